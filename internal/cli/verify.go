package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/cluster/live"
	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/snapshot"
	"github.com/knet-dev/knet/verify"
)

// verifyOptions are `knet verify`'s switches.
type verifyOptions struct {
	clusterFlags
	snapshot   string
	objects    []string
	kubeconfig string
	live       bool
	cni        string
	cniMode    string
	node       string
	output     string
}

func newVerifyCmd(s Streams) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify --snapshot DIR (--preset NAME | -f CLUSTER.yaml | --objects FILE... | --kubeconfig[=FILE]) [--node NAME] [-o text|json]",
		Short: "verify a node snapshot against its intent",
		Long: `verify renders what the CNI and kube-proxy should have programmed on the snapshot's node
(the intent, from the cluster and its objects) and compares it with the snapshot (what the node
has): missing or stale Service chains and endpoints, IPVS virtual services and kube-ipvs0
addresses, kube-proxy nftables elements, leftovers of another kube-proxy mode, pod block routes
and blackholes, tunnel MTU, ip_forward, strict rp_filter and a nearly full conntrack table.
Each finding names its severity, the Kubernetes object, the evidence lines and a fix.
Exit status 1 when any error was found, 0 otherwise.

The cluster comes from --preset or -f; or from the API server (--kubeconfig, as knet import);
or from kubectl dumps alone (--objects: nodes, pods, Services, EndpointSlices, the kube-proxy
configuration; CNI and CIDRs inferred as knet import does). --objects with --preset or -f
replaces the cluster's Services and EndpointSlices (and Pods, KubeProxyConfiguration when
given) and keeps its shape: CNI, subnets, pod blocks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.live = cmd.Flags().Changed("kubeconfig")
			return runVerify(cmd.Context(), s, o)
		},
	}
	o.clusterFlags.add(cmd)
	cmd.Flags().StringVar(&o.snapshot, "snapshot", "", "snapshot folder (knet collect)")
	cmd.Flags().StringSliceVar(&o.objects, "objects", nil, "Kubernetes object files (YAML or JSON) replacing the cluster's Services and EndpointSlices")
	cmd.Flags().StringVar(&o.kubeconfig, "kubeconfig", "", "read the cluster from its API server (kubectl's resolution: this file, else $KUBECONFIG, in-cluster, ~/.kube/config)")
	cmd.Flags().Lookup("kubeconfig").NoOptDefVal = " "
	cmd.Flags().StringVar(&o.cni, "cni", "", "with --objects alone or --kubeconfig: pod network calico|kube-router|flannel (default: read from the cluster)")
	cmd.Flags().StringVar(&o.cniMode, "cni-mode", "", "with --objects alone or --kubeconfig: pod network mode (e.g. IPIPAlways, vxlan)")
	cmd.Flags().StringVar(&o.node, "node", "", "node name (default: the snapshot's)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output: text or json")
	return cmd
}

// verifyCluster is the cluster the intent is rendered from: --kubeconfig (the live API),
// --objects alone (a cluster inferred from kubectl dumps by cluster/live.FromObjects), or
// --preset / -f, with --objects replacing its Services and EndpointSlices.
func verifyCluster(ctx context.Context, o *verifyOptions) (*cluster.Cluster, error) {
	shaped := o.preset != "" || o.file != ""
	lo := live.Options{CNI: cluster.CNI{Plugin: cluster.CNIPlugin(o.cni), Mode: o.cniMode}}
	if shaped && (o.cni != "" || o.cniMode != "") {
		return nil, errors.New("--cni and --cni-mode go with --objects alone or --kubeconfig; the cluster file or preset names its CNI")
	}
	switch {
	case o.live && (shaped || len(o.objects) > 0):
		return nil, errors.New("give --kubeconfig alone, not with --preset, -f or --objects")
	case o.live:
		cfg, err := live.RESTConfig(strings.TrimSpace(o.kubeconfig))
		if err != nil {
			return nil, err
		}
		c, _, err := live.Import(ctx, cfg, lo)
		return c, err
	case !shaped && len(o.objects) > 0:
		objs, notes, err := cluster.LoadObjects(o.objects...)
		if err != nil {
			return nil, err
		}
		c, _, err := live.FromObjects(objs, lo)
		if err != nil {
			return nil, err
		}
		c.Notes = append(c.Notes, notes...)
		return c, nil
	}
	c, err := o.clusterFlags.load()
	if err != nil {
		return nil, err
	}
	if len(o.objects) > 0 {
		if err := replaceObjects(c, o.objects); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func runVerify(ctx context.Context, s Streams, o *verifyOptions) error {
	if o.snapshot == "" {
		return errors.New("verify: --snapshot DIR is required")
	}
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("verify: -o %q: want text or json", o.output)
	}
	c, err := verifyCluster(ctx, o)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	actual, meta, probs, err := snapshot.Load(o.snapshot)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	node := o.node
	if node == "" {
		node = meta.Node
	}
	if node == "" {
		return fmt.Errorf("verify: %s names no node: give --node", o.snapshot)
	}
	intent, err := render.Node(c, node)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	findings := verify.Verify(intent, actual, c, node)
	if err := writeFindings(s.Out, o.output, node, o.snapshot, findings, probs); err != nil {
		return err
	}
	if verify.Count(findings, verify.SeverityError) > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}

// replaceObjects puts the objects of files into c in place of its Services and
// EndpointSlices (and Pods and the kube-proxy configuration when the files have them).
func replaceObjects(c *cluster.Cluster, files []string) error {
	objs, notes, err := cluster.LoadObjects(files...)
	if err != nil {
		return err
	}
	c.Notes = append(c.Notes, notes...)
	cluster.ApplyDefaults(&objs)
	c.Objects.Services = objs.Services
	c.Objects.EndpointSlices = objs.EndpointSlices
	if len(objs.Pods) > 0 {
		c.Objects.Pods = objs.Pods
		c.Reindex()
	}
	if objs.ProxyConfig != nil {
		c.Objects.ProxyConfig = objs.ProxyConfig
	}
	if len(c.Objects.EndpointSlices) == 0 {
		cluster.DeriveEndpointSlices(&c.Objects)
	}
	return nil
}

// verifyReport is `knet verify -o json`.
type verifyReport struct {
	Node     string             `json:"node"`
	Snapshot string             `json:"snapshot"`
	Errors   int                `json:"errors"`
	Warnings int                `json:"warnings"`
	Findings []verify.Finding   `json:"findings"`
	Problems []snapshot.Problem `json:"problems,omitempty"`
}

func writeFindings(w io.Writer, output, node, dir string, fs []verify.Finding, probs []snapshot.Problem) error {
	nerr, nwarn := verify.Count(fs, verify.SeverityError), verify.Count(fs, verify.SeverityWarning)
	if output == "json" {
		if fs == nil {
			fs = []verify.Finding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(verifyReport{Node: node, Snapshot: dir, Errors: nerr, Warnings: nwarn, Findings: fs, Problems: probs})
	}
	fmt.Fprintf(w, "node %s (snapshot %s): %d errors, %d warnings, %d info\n", node, dir, nerr, nwarn, verify.Count(fs, verify.SeverityInfo))
	for _, p := range probs {
		fmt.Fprintf(w, "snapshot: %s\n", p)
	}
	for _, sev := range []verify.Severity{verify.SeverityError, verify.SeverityWarning, verify.SeverityInfo} {
		first := true
		for _, f := range fs {
			if f.Severity != sev {
				continue
			}
			if first {
				fmt.Fprintf(w, "\n%sS\n", upper(string(sev)))
				first = false
			}
			fmt.Fprintf(w, "\n  [%s] %s: %s\n", f.Check, f.Object, f.Message)
			for _, e := range f.Evidence {
				fmt.Fprintf(w, "      %s\n", e)
			}
			if f.Fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", f.Fix)
			}
		}
	}
	_, err := fmt.Fprint(w, "")
	return err
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
