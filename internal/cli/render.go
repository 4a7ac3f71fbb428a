package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/format/iptablessave"
	nftformat "github.com/knet-dev/knet/format/nft"
	"github.com/knet-dev/knet/render/kubeproxy"
	kpiptables "github.com/knet-dev/knet/render/kubeproxy/iptables"
	kpipvs "github.com/knet-dev/knet/render/kubeproxy/ipvs"
	kpnftables "github.com/knet-dev/knet/render/kubeproxy/nftables"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
)

// renderFormat is the --format of `knet render kube-proxy`.
type renderFormat string

const (
	renderRestore renderFormat = "restore"
	renderSave    renderFormat = "save"
)

func newRenderCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "render",
		Short: "render what kube-proxy or the CNI programs on a node",
	}
	cmd.AddCommand(newRenderKubeProxyCmd(s))
	return cmd
}

// kubeProxyFlags are the flags of `knet render kube-proxy`.
type kubeProxyFlags struct {
	objects             []string
	config              string
	node                string
	mode                string
	format              string
	markFormat          string
	family              string
	randomFully         bool
	nfacct              bool
	conntrackTCPLiberal bool
}

func newRenderKubeProxyCmd(s Streams) *cobra.Command {
	var f kubeProxyFlags
	cmd := &cobra.Command{
		Use:   "kube-proxy --objects FILE... [--config KUBEPROXYCONFIG.yaml] [--node NAME] [--mode iptables|ipvs|nftables] [--format restore|save]",
		Short: "print what kube-proxy's first full sync programs on a node",
		Long: `Prints what kube-proxy (v` + kubeproxy.DefaultVersion + `) programs on one node in its first full sync, from
Kubernetes objects (Services, EndpointSlices, Pods, Nodes; EndpointSlices are derived from
Pods for Services that have none).

--format restore prints the exact iptables-restore input kube-proxy writes (mark 0x00004000
as the real binary; --mark-format tests gives upstream's unit-test spelling 0x4000);
--format save prints what iptables-save (v1.8.9, nf_tables) shows afterwards, including
kubelet's and kube-proxy's canary chains and the jump rules in the builtin chains.

The node name comes from --node, else the configuration's hostnameOverride; the node IPs
from that Node object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRenderKubeProxy(s, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.objects, "objects", nil, "Kubernetes objects (YAML or JSON, multi-document, kind: List); repeatable")
	fl.StringVar(&f.config, "config", "", "KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1)")
	fl.StringVar(&f.node, "node", "", "node name (default: the configuration's hostnameOverride)")
	fl.StringVar(&f.mode, "mode", "", "proxy mode: iptables, ipvs or nftables (default: the configuration's mode, else iptables)")
	fl.StringVar(&f.format, "format", string(renderRestore), "output: restore (iptables-restore input) or save (iptables-save afterwards)")
	fl.StringVar(&f.markFormat, "mark-format", string(kpiptables.MarkRuntime), "masquerade mark spelling: runtime (0x00004000, the binary) or tests (0x4000, upstream unit tests)")
	fl.StringVar(&f.family, "ip-family", string(kubeproxy.IPv4), "IP family of the proxier: IPv4 or IPv6")
	fl.BoolVar(&f.randomFully, "random-fully", true, "the node's iptables supports MASQUERADE --random-fully")
	fl.BoolVar(&f.nfacct, "nfacct", true, "the node's kernel lets kube-proxy create nfacct counters")
	fl.BoolVar(&f.conntrackTCPLiberal, "conntrack-tcp-liberal", false, "net.netfilter.nf_conntrack_tcp_be_liberal is set (no INVALID drop rule)")
	return cmd
}

func runRenderKubeProxy(s Streams, f kubeProxyFlags) error {
	if len(f.objects) == 0 {
		return errors.New("render kube-proxy: --objects is required")
	}
	objs, notes, err := cluster.LoadObjects(f.objects...)
	if err != nil {
		return fmt.Errorf("render kube-proxy: %w", err)
	}
	if f.config != "" {
		cfgObjs, cfgNotes, err := cluster.LoadObjects(f.config)
		if err != nil {
			return fmt.Errorf("render kube-proxy: %w", err)
		}
		notes = append(notes, cfgNotes...)
		if cfgObjs.ProxyConfig == nil {
			return fmt.Errorf("render kube-proxy: %s holds no KubeProxyConfiguration", f.config)
		}
		objs.ProxyConfig = cfgObjs.ProxyConfig
	}
	for _, n := range notes {
		fmt.Fprintf(s.Err, "knet: note: %s\n", n)
	}
	cluster.DeriveEndpointSlices(&objs)

	mode := cluster.ProxyMode(f.mode)
	if mode == "" && objs.ProxyConfig != nil && objs.ProxyConfig.Mode != "" {
		mode = cluster.ProxyMode(objs.ProxyConfig.Mode)
	}
	if mode == "" {
		mode = cluster.ProxyIPTables
	}
	nodeName := f.node
	if nodeName == "" && objs.ProxyConfig != nil {
		nodeName = objs.ProxyConfig.HostnameOverride
	}
	if nodeName == "" {
		return errors.New("render kube-proxy: no node name: pass --node or a --config with hostnameOverride")
	}
	var node *corev1.Node
	for _, n := range objs.Nodes {
		if n.Name == nodeName {
			node = n
		}
	}
	if node == nil {
		fmt.Fprintf(s.Err, "knet: note: no Node object named %q in the objects: no node IPs, no zone\n", nodeName)
	}

	switch mode {
	case cluster.ProxyIPTables:
		return renderIPTables(s.Out, objs, node, nodeName, f)
	case cluster.ProxyIPVS:
		return renderIPVS(s.Out, objs, node, nodeName, f)
	case cluster.ProxyNFTables:
		return renderNFTables(s.Out, objs, node, nodeName, f)
	default:
		return fmt.Errorf("render kube-proxy: unknown mode %q (want iptables, ipvs or nftables)", mode)
	}
}

// configForMode returns the configuration with its mode cleared when --mode overrides it.
func configForMode(cfg *kubeproxyconfigv1alpha1.KubeProxyConfiguration, mode cluster.ProxyMode) *kubeproxyconfigv1alpha1.KubeProxyConfiguration {
	if cfg != nil && cfg.Mode != "" && cluster.ProxyMode(cfg.Mode) != mode {
		c := *cfg
		c.Mode = ""
		return &c
	}
	return cfg
}

// renderIPVS prints the IPVS mode's iptables-restore input, ipset save and ipvsadm -Ln
// (--format save: ipvsadm-save -n) as render/kubeproxy/ipvs.WriteSections does.
func renderIPVS(w io.Writer, objs cluster.Objects, node *corev1.Node, nodeName string, f kubeProxyFlags) error {
	opts, err := kpipvs.OptionsFromConfig(configForMode(objs.ProxyConfig, cluster.ProxyIPVS), node, nodeName, kubeproxy.Family(f.family))
	if err != nil {
		return fmt.Errorf("render kube-proxy: %w", err)
	}
	res, err := kpipvs.Render(objs, opts)
	if err != nil {
		return fmt.Errorf("render kube-proxy: %w", err)
	}
	switch renderFormat(f.format) {
	case renderRestore, renderSave:
		return kpipvs.WriteSections(w, res, kpipvs.SectionOptions{Save: renderFormat(f.format) == renderSave})
	}
	return fmt.Errorf("render kube-proxy: unknown --format %q (want restore or save)", f.format)
}

// renderNFTables prints the nftables mode's first transaction (`nft -f` input, --format
// restore) or the `nft list ruleset` that results (--format save).
func renderNFTables(w io.Writer, objs cluster.Objects, node *corev1.Node, nodeName string, f kubeProxyFlags) error {
	opts, err := kpnftables.OptionsFromConfig(configForMode(objs.ProxyConfig, cluster.ProxyNFTables), node, nodeName,
		kubeproxy.Family(f.family), kubeproxy.NodeIPs(objs, nodeName), nil)
	if err != nil {
		return fmt.Errorf("render kube-proxy: %w", err)
	}
	switch renderFormat(f.format) {
	case renderRestore:
		tx, err := kpnftables.RenderTransaction(objs, opts)
		if err != nil {
			return fmt.Errorf("render kube-proxy: %w", err)
		}
		_, err = io.WriteString(w, tx)
		return err
	case renderSave:
		rs, err := kpnftables.RenderRuleset(objs, opts)
		if err != nil {
			return fmt.Errorf("render kube-proxy: %w", err)
		}
		return nftformat.Write(w, rs, nftformat.WriteOptions{})
	}
	return fmt.Errorf("render kube-proxy: unknown --format %q (want restore or save)", f.format)
}

func renderIPTables(w io.Writer, objs cluster.Objects, node *corev1.Node, nodeName string, f kubeProxyFlags) error {
	opts, err := kpiptables.OptionsFromConfig(configForMode(objs.ProxyConfig, cluster.ProxyIPTables), node, nodeName, kubeproxy.Family(f.family))
	if err != nil {
		return fmt.Errorf("render kube-proxy: %w", err)
	}
	opts.MarkFormat = kpiptables.MarkFormat(f.markFormat)
	opts.RandomFully = f.randomFully
	opts.NFAcct = f.nfacct
	opts.ConntrackTCPLiberal = f.conntrackTCPLiberal
	p := kpiptables.NewProxier(opts)
	restore, err := p.Sync(objs)
	if err != nil {
		return fmt.Errorf("render kube-proxy: %w", err)
	}
	switch renderFormat(f.format) {
	case renderRestore:
		_, err := w.Write(restore)
		return err
	case renderSave:
		rs, err := p.Ruleset(restore)
		if err != nil {
			return fmt.Errorf("render kube-proxy: %w", err)
		}
		var out bytes.Buffer
		if err := iptablessave.Write(&out, rs, iptablessave.WriteOptions{}); err != nil {
			return fmt.Errorf("render kube-proxy: %w", err)
		}
		_, err = w.Write(out.Bytes())
		return err
	}
	return fmt.Errorf("render kube-proxy: unknown --format %q (want restore or save)", f.format)
}
