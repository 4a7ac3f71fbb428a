package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/render/kubeproxy"
	"github.com/knet-dev/knet/simulate"
)

type simulateFlags struct {
	clusterFlags
	objects     []string
	from, to    string
	node        string
	connections int
	schedulers  []string
	mode        string
	clients     int
	duration    string
	lifetime    time.Duration
	rate        float64
	seed        uint64
	weights     string
	svg         string
	output      string
}

func newSimulateCmd(s Streams) *cobra.Command {
	f := &simulateFlags{}
	cmd := &cobra.Command{
		Use:   "simulate (--preset NAME | -f CLUSTER.yaml | --objects F...) --to SERVICE [--from POD]",
		Short: "simulate load balancing over many connections (iptables and every IPVS scheduler)",
		Long: `simulate spreads N connections from client pods over a Service's endpoints as the
client node's kube-proxy balances them: iptables mode with the statistic probabilities of the
rendered rules, IPVS mode with the Linux 6.x schedulers (rr, wrr, lc, wlc, lblc, lblcr, dh, sh,
sed, nq, fo, ovf, mh, twos) running on the virtual server kube-proxy would create, with
ClientIP affinity as persistence, connection lifetimes and K distinct clients.
IPVS mode is deprecated since kube-proxy 1.35 (KEP-5495).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runSimulate(s, f) },
	}
	f.clusterFlags.add(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&f.objects, "objects", nil, "Kubernetes objects (YAML/JSON) instead of a cluster")
	fl.StringVar(&f.to, "to", "", "Service: namespace/name[:port]")
	fl.StringVar(&f.to, "service", "", "alias of --to")
	fl.StringVar(&f.from, "from", "", "client pod (namespace/name or name) or client IP")
	fl.StringVar(&f.node, "node", "", "node whose kube-proxy balances (default: the --from pod's node)")
	fl.IntVar(&f.connections, "connections", 1000, "number of new connections")
	fl.StringSliceVar(&f.schedulers, "scheduler", nil, "IPVS scheduler(s) (default: every scheduler)")
	fl.StringVar(&f.mode, "mode", "all", "iptables, ipvs or all")
	fl.IntVar(&f.clients, "clients", 1, "number of distinct client source IPs (the --from pod's IP first)")
	fl.StringVar(&f.duration, "duration-model", string(simulate.Exponential), "connection lifetimes: fixed or exponential")
	fl.DurationVar(&f.lifetime, "lifetime", 10*time.Second, "fixed or mean connection lifetime")
	fl.Float64Var(&f.rate, "rate", 100, "new connections per second")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed (same seed, same result)")
	fl.StringVar(&f.weights, "weights", "", "IPVS weights: IP:PORT=W,... (kube-proxy uses 1)")
	fl.StringVar(&f.svg, "svg", "", "also write an SVG bar chart to FILE")
	fl.StringVarP(&f.output, "output", "o", "text", "text, json or yaml")
	return cmd
}

func runSimulate(s Streams, f *simulateFlags) error {
	if f.to == "" {
		return errors.New("simulate: --to SERVICE is required")
	}
	var objs cluster.Objects
	var c *cluster.Cluster
	if len(f.objects) > 0 {
		if f.preset != "" || f.file != "" {
			return errors.New("simulate: give --objects or a cluster (--preset/-f), not both")
		}
		o, notes, err := cluster.LoadObjects(f.objects...)
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		for _, n := range notes {
			fmt.Fprintf(s.Err, "knet: note: %s\n", n)
		}
		cluster.DeriveEndpointSlices(&o)
		objs = o
	} else {
		var err error
		if c, err = f.load(); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		objs = c.Objects
	}
	client, node, err := resolveClient(objs, f.from, f.node)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if node == "" {
		return errors.New("simulate: no node: give --from POD or --node NODE")
	}
	nodeIPs := kubeproxy.NodeIPs(objs, node)
	if c != nil && len(nodeIPs) == 0 {
		if n := c.NodeByName(node); n != nil {
			nodeIPs = []netip.Addr{n.IP}
		}
	}
	withIPT := f.mode == "all" || f.mode == "iptables"
	withIPVS := f.mode == "all" || f.mode == "ipvs"
	if !withIPT && !withIPVS {
		return fmt.Errorf("simulate: unknown --mode %q (want iptables, ipvs or all)", f.mode)
	}
	var scheds []ipvs.Scheduler
	if withIPVS {
		if len(f.schedulers) == 0 {
			scheds = ipvs.Schedulers()
		}
		for _, name := range f.schedulers {
			sc, err := ipvs.ParseScheduler(name)
			if err != nil {
				return fmt.Errorf("simulate: --scheduler: %w", err)
			}
			scheds = append(scheds, sc)
		}
	}
	weights, err := simulate.ParseWeights(f.weights)
	if err != nil {
		return fmt.Errorf("simulate: --weights: %w", err)
	}
	if f.clients < 1 {
		return errors.New("simulate: --clients must be at least 1")
	}
	base := simulate.Config{Connections: f.connections, Clients: simulate.Clients(client, f.clients), Rate: f.rate,
		Duration: simulate.DurationModel(f.duration), Lifetime: f.lifetime, Seed: f.seed}
	cfgs, err := simulate.Configs(objs, simulate.Target{Service: f.to, Node: node, NodeIPs: nodeIPs}, base, withIPT, scheds)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	var reps []*simulate.Report
	for _, cfg := range cfgs {
		for i := range cfg.Endpoints {
			if w, ok := weights[cfg.Endpoints[i].Addr]; ok {
				cfg.Endpoints[i].Weight = w
			}
		}
		r, err := simulate.Run(cfg)
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		reps = append(reps, r)
	}
	if f.svg != "" {
		fh, err := os.Create(f.svg)
		if err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		if err := simulate.WriteSVG(fh, reps); err != nil {
			fh.Close()
			return fmt.Errorf("simulate: write %s: %w", f.svg, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("simulate: write %s: %w", f.svg, err)
		}
	}
	switch f.output {
	case "json":
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(reps)
	case "yaml":
		b, err := yaml.Marshal(reps)
		if err != nil {
			return err
		}
		_, err = s.Out.Write(b)
		return err
	case "text":
	default:
		return fmt.Errorf("simulate: unknown -o %q (want text, json or yaml)", f.output)
	}
	fmt.Fprintf(s.Out, "client node %s, %d client(s) from %s; %s lifetimes of %s at %.0f/s, seed %d\n",
		node, f.clients, client, f.duration, f.lifetime, f.rate, f.seed)
	if withIPVS {
		fmt.Fprintln(s.Out, "note: kube-proxy IPVS mode is deprecated since v1.35 (KEP-5495)")
	}
	for _, r := range reps {
		fmt.Fprintln(s.Out)
		if err := simulate.WriteTable(s.Out, r); err != nil {
			return err
		}
		if err := simulate.WriteChart(s.Out, r); err != nil {
			return err
		}
	}
	return nil
}

// resolveClient finds the client's IP and node: a pod (namespace/name or a unique name) or
// an IP address.
func resolveClient(objs cluster.Objects, from, node string) (netip.Addr, string, error) {
	if from == "" {
		return netip.Addr{}, node, nil
	}
	if a, err := netip.ParseAddr(from); err == nil {
		return a, node, nil
	}
	ns, name := "", from
	if a, b, ok := strings.Cut(from, "/"); ok {
		ns, name = a, b
	}
	var found []*corev1.Pod
	for _, p := range objs.Pods {
		if p.Name == name && (ns == "" || p.Namespace == ns) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return netip.Addr{}, "", fmt.Errorf("no pod %q", from)
	case 1:
	default:
		return netip.Addr{}, "", fmt.Errorf("pod name %q is ambiguous; use namespace/name", from)
	}
	p := found[0]
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("pod %s/%s has no IP", p.Namespace, p.Name)
	}
	if node == "" {
		node = p.Spec.NodeName
	}
	return ip, node, nil
}
