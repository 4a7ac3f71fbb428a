package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/compare"
	"github.com/knet-dev/knet/explain"
)

// tourStop is one stop of the tour on one cluster: a knet command whose output is shown,
// optionally cut to the lines that matter, and optionally annotated line by line.
type tourStop struct {
	title string
	args  []string
	// keep, when set, keeps only the output lines containing one of these strings (and
	// the headers of the tool's format), as the seed shows excerpts.
	keep []string
	// explain annotates every shown line with knet explain.
	explain bool
	// optional stops print their error instead of failing the tour (a capability that has
	// not landed says so in the output).
	optional bool
}

type tourCluster struct {
	preset string
	// worker is the node whose stack the tour shows: the one whose pod block the seed
	// shows (10.0.7.0/24 in Cluster A, 10.0.104.0/24 in Cluster B).
	podCIDR string
	intro   string
	stops   func(worker string) []tourStop
}

func tourPlan() []tourCluster {
	ingress := "ingress-nginx/ingress-nginx-controller"
	return []tourCluster{
		{
			preset:  "cluster-a",
			podCIDR: "10.0.7.0/24",
			intro: `Cluster A: Calico (IPIP CrossSubnet) + kube-proxy (IPVS mode).
IP-in-IP is used only for traffic that crosses a subnet boundary: nodes in the same AWS
subnet talk over eth0, nodes in other subnets over tunl0. kube-proxy binds every Service IP
to the dummy interface kube-ipvs0 and load-balances with IPVS (deprecated since 1.35).`,
			stops: func(w string) []tourStop {
				return []tourStop{
					{title: "The nodes, in two subnets (AWS multi-AZ)", args: []string{"get", "nodes", "--preset", "cluster-a", "-o", "wide"}},
					{title: "The worker's routing table: eth0 within the subnet, tunl0 across, a blackhole for its own pod block", args: []string{"exec", "--preset", "cluster-a", w, "--", "ip", "route"}, explain: true},
					{title: "Its interfaces: eth0, tunl0, kube-ipvs0 holding the Service IPs, a cali interface per pod", args: []string{"exec", "--preset", "cluster-a", w, "--", "ip", "-4", "addr"}, explain: true},
					{title: "IPVS load balancing: every Service IP on kube-ipvs0 has a virtual server", args: []string{"exec", "--preset", "cluster-a", w, "--", "ipvsadm", "-Ln"}, keep: []string{"10.1.0.1:443", "10.1.0.10:53", "10.1.60.159:80"}, explain: true},
					{title: "The containers on this worker", args: []string{"exec", "--preset", "cluster-a", w, "--", "crictl", "ps"}, explain: true},
					{title: "A request from the busybox pod to the ingress controller", args: []string{"trace", "--preset", "cluster-a", "--from", "default/busybox", "--to", ingress + ":80"}},
					{title: "How 3,000 connections spread over the three ingress pods (iptables' random choice and IPVS schedulers)", args: []string{"simulate", "--preset", "cluster-a", "--from", "default/busybox", "--to", ingress + ":http", "--connections", "3000", "--scheduler", "rr,wrr,lc,sh,mh", "--clients", "50"}},
				}
			},
		},
		{
			preset:  "cluster-b",
			podCIDR: "10.0.104.0/24",
			intro: `Cluster B: Calico (IPIP Always) + kube-proxy (iptables mode).
Every packet between nodes is encapsulated in IP-in-IP through tunl0, whatever the subnet;
kube-proxy programs one KUBE-SVC chain per Service port and one KUBE-SEP chain per endpoint,
chosen at random with the statistic match.`,
			stops: func(w string) []tourStop {
				return []tourStop{
					{title: "The worker's routing table: only tunl0 between nodes", args: []string{"exec", "--preset", "cluster-b", w, "--", "ip", "route"}, explain: true},
					{title: "Its interfaces: no kube-ipvs0 in iptables mode", args: []string{"exec", "--preset", "cluster-b", w, "--", "ip", "-4", "addr"}, explain: true},
					{title: "The ingress controller in iptables-save: node port 30998, ClusterIP 10.1.60.159, three KUBE-SEP chains", args: []string{"exec", "--preset", "cluster-b", w, "--", "iptables-save", "-t", "nat"}, keep: []string{"controller:http\"", "controller:http "}, explain: true},
					{title: "The pods on this worker, to match cali interfaces and the blackhole", args: []string{"exec", "--preset", "cluster-b", w, "--", "crictl", "pods"}, explain: true},
					{title: "A request from the busybox pod to the ingress controller", args: []string{"trace", "--preset", "cluster-b", "--from", "default/busybox", "--to", ingress + ":80"}},
				}
			},
		},
		{
			preset: "cluster-c",
			intro: `Cluster C: kube-router + kube-proxy (iptables mode).
Like Calico CrossSubnet, kube-router routes over eth0 inside a subnet and through a tun-
tunnel per remote node across subnets; pods hang off the kube-bridge bridge by veth pairs.`,
			stops: func(w string) []tourStop {
				return []tourStop{
					{title: "The worker's routing table: same-subnet routes by kube-router (proto 17), tun- tunnels across", args: []string{"exec", "--preset", "cluster-c", w, "--", "ip", "route", "show", "table", "all"}, keep: []string{"10.0.", "default", "tun-", "kube-bridge"}, explain: true},
					{title: "Its interfaces: kube-bridge between eth0 and the pods' veths", args: []string{"exec", "--preset", "cluster-c", w, "--", "ip", "link"}, explain: true},
					{title: "A request from the busybox pod to the ingress controller", args: []string{"trace", "--preset", "cluster-c", "--from", "default/busybox", "--to", ingress + ":80"}},
				}
			},
		},
	}
}

func newTourCmd(s Streams) *cobra.Command {
	var only string
	cmd := &cobra.Command{
		Use:   "tour",
		Short: "walk the seed's clusters A, B and C",
		Long: `tour walks the three clusters of "Kubernetes networking deep dive: did you make the
right choice?" (Calico IPIP CrossSubnet + IPVS, Calico IPIP Always + iptables, kube-router +
iptables), emulated: each worker's ip route, ip addr, ipvsadm / iptables-save and crictl
output exactly as the tools print it, annotated line by line, a request traced from a client
pod through the Service to a pod, the load-balancing spread, and the three choices compared.
Every step is a knet command you can run yourself; the tour prints it before its output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTour(cmd.Context(), s, only)
		},
	}
	cmd.Flags().StringVar(&only, "cluster", "", "tour only this preset (cluster-a, cluster-b or cluster-c)")
	return cmd
}

func runTour(ctx context.Context, s Streams, only string) error {
	w := bufio.NewWriter(s.Out)
	defer w.Flush()
	fmt.Fprintln(w, "knet tour: the seed's clusters A, B and C, emulated node by node.")
	fmt.Fprintln(w, "Every step below is a knet command; its output is what the real tool prints on such a node.")
	var summaries []*cluster.Cluster
	for _, tc := range tourPlan() {
		if only != "" && only != tc.preset {
			continue
		}
		c, err := cluster.Preset(tc.preset)
		if err != nil {
			return err
		}
		summaries = append(summaries, c)
		worker := tourWorker(c, tc.podCIDR)
		fmt.Fprintf(w, "\n%s\n%s\n", strings.Repeat("=", 100), tc.intro)
		fmt.Fprintf(w, "The worker shown is %s.\n", worker)
		for _, st := range tc.stops(worker) {
			if err := runTourStop(ctx, w, c, st); err != nil {
				return fmt.Errorf("%s: %s: %w", tc.preset, st.title, err)
			}
		}
	}
	if only == "" {
		fmt.Fprintf(w, "\n%s\n", strings.Repeat("=", 100))
		fmt.Fprintln(w, "Did you make the right choice? The three clusters side by side:")
		fmt.Fprintln(w)
		if err := compare.WriteSummary(w, summaries); err != nil {
			return err
		}
		fmt.Fprintln(w, "\nFor every kube-proxy mode and pod network at your own scale: knet compare --profile FILE --html report.html")
		fmt.Fprintln(w, "To see the same flows on a real kernel: knet lab run --preset NAME")
	}
	return nil
}

// tourWorker picks the worker whose pod block is podCIDR, else the first worker.
func tourWorker(c *cluster.Cluster, podCIDR string) string {
	first := ""
	for _, n := range c.Nodes {
		if n.Role == "control-plane" {
			continue
		}
		if first == "" {
			first = n.Name
		}
		if podCIDR != "" && n.PodCIDR.String() == podCIDR {
			return n.Name
		}
	}
	return first
}

// runTourStop runs one knet command in-process and prints it with its output.
func runTourStop(ctx context.Context, w io.Writer, c *cluster.Cluster, st tourStop) error {
	fmt.Fprintf(w, "\n--- %s\n$ knet %s\n", st.title, strings.Join(st.args, " "))
	var out, errb bytes.Buffer
	root := newRootCmd(Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	root.SetArgs(st.args)
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.ExecuteContext(ctx); err != nil {
		if st.optional {
			fmt.Fprintf(w, "(not available: %v)\n", err)
			return nil
		}
		return fmt.Errorf("knet %s: %w", strings.Join(st.args, " "), err)
	}
	text := out.String()
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var recs []explain.Record
	if st.explain {
		r, err := explainDump("output", out.Bytes(), c)
		if err != nil {
			return fmt.Errorf("explain: %w", err)
		}
		recs = r
	}
	keep := st.keep
	if st.keep != nil {
		keep = withRelatedChains(lines, st.keep)
	}
	shown := 0
	keptParent := false
	for i, l := range lines {
		if st.keep != nil {
			child := strings.HasPrefix(strings.TrimLeft(l, " "), "->") && !strings.HasPrefix(l, "  -> RemoteAddress")
			shownLine := isHeaderLine(l) || keepLine(l, keep) || (child && keptParent)
			if !child {
				keptParent = keepLine(l, keep)
			}
			if !shownLine {
				continue
			}
		}
		fmt.Fprint(w, l)
		if !strings.HasSuffix(l, "\n") {
			fmt.Fprintln(w)
		}
		shown++
		if i < len(recs) && recs[i].Meaning != "" && recs[i].Kind != explain.Unknown {
			fmt.Fprintf(w, "      ^ %s\n", recs[i].Meaning)
		}
	}
	if st.keep != nil {
		fmt.Fprintf(w, "(%d of %d lines shown: those about %s)\n", shown, len(lines), strings.Join(st.keep, ", "))
	}
	if errb.Len() > 0 {
		fmt.Fprint(w, errb.String())
	}
	return nil
}

var reKubeChain = regexp.MustCompile(`KUBE-(SVC|SVL|SEP|EXT|FW)-[A-Z2-7]{16}`)

// withRelatedChains adds to keep the kube-proxy chains named on the lines keep selects, so
// an excerpt about one Service shows its KUBE-SVC and KUBE-SEP chains too.
func withRelatedChains(lines, keep []string) []string {
	out := append([]string(nil), keep...)
	seen := map[string]bool{}
	for _, l := range lines {
		if !keepLine(l, keep) {
			continue
		}
		for _, ch := range reKubeChain.FindAllString(l, -1) {
			if !seen[ch] {
				seen[ch] = true
				out = append(out, ch)
			}
		}
	}
	return out
}

func keepLine(l string, keep []string) bool {
	for _, k := range keep {
		if strings.Contains(l, k) {
			return true
		}
	}
	return false
}

// isHeaderLine keeps the column headers and table markers of the formats the tour cuts.
func isHeaderLine(l string) bool {
	for _, p := range []string{"IP Virtual Server", "Prot LocalAddress", "  -> RemoteAddress", "*nat", "*filter", "COMMIT", "# Generated", "# Completed"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
