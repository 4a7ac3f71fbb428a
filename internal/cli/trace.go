package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/ipvsadm"
	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/snapshot"
	"github.com/knet-dev/knet/trace"
)

// traceFlags are `knet trace`'s flags: the from-dumps form (trace.Trace on a node built from
// native dumps) and the cluster form (--preset/-f, --from, --to: trace.TraceCluster on the
// rendered nodes).
type traceFlags struct {
	// from dumps
	iptablesSave []string
	ipvsadm      string
	ipset        string
	ipAddr       string
	ipRoute      string
	localIPs     []string
	src, dst     string
	sport, dport uint16
	proto        string
	inIface      string
	node         string

	// cluster form
	preset   string
	file     string
	from, to string

	// snapshot form
	snapshot string

	output string
}

func newTraceCmd(s Streams) *cobra.Command {
	var f traceFlags
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "trace one packet through a node or a cluster",
		Long: `trace follows the first packet of a connection through a node's netfilter hooks in
kernel order (PREROUTING, routing, INPUT or FORWARD, OUTPUT for a packet the node sends,
POSTROUTING) and prints the verdict, every possible DNAT destination with its probability,
whether the connection is masqueraded, and the rules it went through.

From dumps of a real node:
  knet trace --iptables-save iptables-save.txt --local-ip 192.168.0.2 \
      --src 10.0.0.2 --dst 172.30.0.41 --dport 80 --proto tcp -o json

A --src that is a local address (from --local-ip or the --ip-addr dump) is sent by the node
itself through OUTPUT; any other source arrives from the network at PREROUTING.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrace(cmd, s, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.iptablesSave, "iptables-save", nil, "iptables-save (or ip6tables-save) output file; repeat for both families")
	fl.StringVar(&f.ipvsadm, "ipvsadm", "", "ipvsadm -Ln (or ipvsadm -S -n) output file: Service traffic iptables ACCEPTs is sent to the real server IPVS picks")
	fl.StringVar(&f.ipset, "ipset", "", "ipset save (or ipset list) output file for -m set matches")
	fl.StringVar(&f.ipAddr, "ip-addr", "", "ip addr output file (the node's local addresses)")
	fl.StringVar(&f.ipRoute, "ip-route", "", "ip route show table all output file (routing decision and output device)")
	fl.StringSliceVar(&f.localIPs, "local-ip", nil, "the node's local addresses, comma-separated (added to --ip-addr's)")
	fl.StringVar(&f.src, "src", "", "source address")
	fl.StringVar(&f.dst, "dst", "", "destination address")
	fl.Uint16Var(&f.sport, "sport", 0, fmt.Sprintf("source port (default %d)", trace.DefaultSPort))
	fl.Uint16Var(&f.dport, "dport", 0, "destination port (cluster form: when --to has none)")
	fl.StringVar(&f.proto, "proto", "tcp", "protocol: tcp, udp or sctp")
	fl.StringVar(&f.inIface, "in-iface", "", "interface the packet arrives on (for a packet from the network)")
	fl.StringVar(&f.node, "node", "node", "node name shown in the path")
	fl.StringVar(&f.preset, "preset", "", "trace in an embedded cluster (cluster-a, cluster-b, cluster-c)")
	fl.StringVarP(&f.file, "file", "f", "", "trace in the cluster described by this file")
	fl.StringVar(&f.from, "from", "", "cluster form: the client (POD, NODE or IP)")
	fl.StringVar(&f.to, "to", "", "cluster form: the destination (SERVICE[:PORT], POD or IP:PORT)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text, json or yaml")
	fl.StringVar(&f.snapshot, "snapshot", "", "trace through a node snapshot folder (knet collect): its iptables or nftables, ipsets, addresses and routes")
	return cmd
}

// runSnapshotTrace traces --src/--dst through a snapshot: kube-proxy's nftables table when
// the node has one, else its iptables (with its ipsets and routes).
func runSnapshotTrace(s Streams, f *traceFlags, format trace.Format) error {
	node, meta, probs, err := snapshot.Load(f.snapshot)
	if err != nil {
		return err
	}
	for _, p := range probs {
		fmt.Fprintf(s.Err, "knet: warning: %s\n", p)
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	name := meta.Node
	if f.node != "" && f.node != "node" {
		name = f.node
	}
	if node.NFTables != nil && node.NFTables.Table("ip", "kube-proxy") != nil && !kubeServicesIn(node.IPTables) {
		local := func(a netip.Addr) bool {
			for _, x := range node.Net.Addrs {
				if x.Prefix.Addr() == a {
					return true
				}
			}
			return a.IsLoopback()
		}
		res, err := trace.TraceNFT(name, node.NFTables, local, req)
		if err != nil {
			return err
		}
		return res.Write(s.Out, format)
	}
	if node.IPTables == nil && node.IP6Tables == nil {
		return fmt.Errorf("trace: snapshot %s has neither iptables nor kube-proxy's nftables table", f.snapshot)
	}
	n, err := trace.NewNode(name, node.IPTables, node.IP6Tables, nil)
	if err != nil {
		return err
	}
	n.Net = node.Net
	if node.IPSets != nil {
		n.Sets = trace.SetMatcher{Sets: node.IPSets}
	}
	res, err := trace.Trace(n, req)
	if err != nil {
		return err
	}
	return trace.WithIPVS(res, node.IPVS, name, req).Write(s.Out, format)
}

func kubeServicesIn(rs *netfilter.Ruleset) bool {
	if rs == nil {
		return false
	}
	t := rs.Table(netfilter.TableName("nat"))
	return t != nil && t.Chain("KUBE-SERVICES") != nil
}

func runTrace(cmd *cobra.Command, s Streams, f *traceFlags) error {
	format, err := trace.ParseFormat(f.output)
	if err != nil {
		return err
	}
	if f.preset != "" || f.file != "" || f.from != "" || f.to != "" {
		return runClusterTrace(s, f, format)
	}
	if f.snapshot != "" {
		return runSnapshotTrace(s, f, format)
	}
	if len(f.iptablesSave) == 0 {
		return errors.New("trace: give --iptables-save FILE (from dumps) or --preset/-f with --from/--to (cluster form)")
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	var d trace.Dumps
	for _, name := range f.iptablesSave {
		dump, err := readDumpFile(name)
		if err != nil {
			return err
		}
		d.IPTablesSave = append(d.IPTablesSave, dump)
	}
	for _, x := range []struct {
		name string
		dst  **trace.Dump
	}{{f.ipset, &d.IPSet}, {f.ipAddr, &d.IPAddr}, {f.ipRoute, &d.IPRoute}} {
		if x.name == "" {
			continue
		}
		dump, err := readDumpFile(x.name)
		if err != nil {
			return err
		}
		*x.dst = &dump
	}
	for _, ip := range f.localIPs {
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil {
			return fmt.Errorf("--local-ip: %w", err)
		}
		d.LocalIPs = append(d.LocalIPs, a)
	}
	n, warns, err := trace.NodeFromDumps(f.node, d)
	for _, w := range warns {
		fmt.Fprintf(s.Err, "knet: warning: %s\n", w)
	}
	if err != nil {
		return err
	}
	res, err := trace.Trace(n, req)
	if err != nil {
		return err
	}
	if f.ipvsadm != "" {
		b, err := os.ReadFile(f.ipvsadm)
		if err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		dump, err := ipvsadm.Parse(f.ipvsadm, b)
		if err != nil {
			return fmt.Errorf("trace: %w", err)
		}
		for _, d := range dump.Skipped {
			fmt.Fprintf(s.Err, "knet: warning: %s\n", d)
		}
		if dump.Kind != ipvsadm.KindList && dump.Kind != ipvsadm.KindSave {
			return fmt.Errorf("trace: %s: want `ipvsadm -Ln` or `ipvsadm -S -n` output (the virtual services), not a connection or timeout listing", f.ipvsadm)
		}
		res = trace.WithIPVS(res, dump.State, f.node, req)
	}
	return res.Write(s.Out, format)
}

// runClusterTrace is the cluster form: render every node of the cluster (CNI, kube-proxy,
// CRI) and follow the packet across them with trace.TraceCluster.
func runClusterTrace(s Streams, f *traceFlags, format trace.Format) error {
	if (f.preset == "") == (f.file == "") {
		return errors.New("trace: the cluster form needs exactly one of --preset NAME or -f CLUSTER.yaml")
	}
	if f.from == "" || f.to == "" {
		return errors.New("trace: the cluster form needs --from and --to")
	}
	var c *cluster.Cluster
	var err error
	if f.preset != "" {
		c, err = cluster.Preset(f.preset)
	} else {
		c, err = cluster.LoadCluster(f.file)
	}
	if err != nil {
		return err
	}
	proto, err := trace.ParseProtocol(f.proto)
	if err != nil {
		return fmt.Errorf("--proto: %w", err)
	}
	rendered, err := render.Cluster(c)
	if err != nil {
		return err
	}
	nodes := make(map[string]*dataplane.Node, len(rendered))
	for _, n := range rendered {
		nodes[n.Name] = n
	}
	res, err := trace.TraceCluster(c, nodes, trace.ClusterRequest{From: f.from, To: f.to, Proto: proto, Port: f.dport})
	if err != nil {
		return err
	}
	switch format {
	case trace.FormatJSON:
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case trace.FormatYAML:
		b, err := yaml.Marshal(res)
		if err != nil {
			return err
		}
		_, err = s.Out.Write(b)
		return err
	}
	return writeClusterText(s.Out, res)
}

// writeClusterText prints a cross-node trace hop by hop, one block per possible path.
func writeClusterText(w io.Writer, r *trace.ClusterResult) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s -> %s (%s -> %s)\n", r.Packet.Proto, r.Packet.Src, r.Packet.Dst, r.From, r.To)
	for i, p := range r.Paths {
		fmt.Fprintf(&sb, "\npath %d of %d, p=%.11f: %s", i+1, len(r.Paths), p.Probability, p.Verdict)
		if p.Endpoint != "" {
			fmt.Fprintf(&sb, ", endpoint %s", p.Endpoint)
			if p.EndpointPod != "" {
				fmt.Fprintf(&sb, " (%s)", p.EndpointPod)
			}
		}
		fmt.Fprintf(&sb, ", masquerade %v\n", p.Masquerade)
		for _, part := range []struct {
			name string
			hops []trace.ClusterHop
		}{{"request", p.Request}, {"reply", p.Reply}} {
			if len(part.hops) == 0 {
				continue
			}
			fmt.Fprintf(&sb, "  %s:\n", part.name)
			for _, h := range part.hops {
				where := h.Node
				if h.Netns != "" {
					where += "/" + h.Netns
				}
				line := fmt.Sprintf("    %-22s %-9s", where, h.Step)
				for _, x := range []string{h.Dev, h.Route, h.Rule, h.Note} {
					if x != "" {
						line += " " + x
					}
				}
				if h.Src != "" || h.Dst != "" {
					line += fmt.Sprintf(" [%s -> %s]", h.Src, h.Dst)
				}
				if h.Outer != nil {
					line += fmt.Sprintf(" outer %s %s -> %s (+%d bytes)", h.Outer.Kind, h.Outer.Src, h.Outer.Dst, h.Outer.Overhead)
				}
				sb.WriteString(strings.TrimRight(line, " ") + "\n")
			}
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func (f *traceFlags) request() (trace.Request, error) {
	var req trace.Request
	var err error
	if f.src == "" || f.dst == "" || f.dport == 0 {
		return req, errors.New("trace: --src, --dst and --dport are required")
	}
	if req.Src, err = netip.ParseAddr(f.src); err != nil {
		return req, fmt.Errorf("--src: %w", err)
	}
	if req.Dst, err = netip.ParseAddr(f.dst); err != nil {
		return req, fmt.Errorf("--dst: %w", err)
	}
	if req.Proto, err = trace.ParseProtocol(f.proto); err != nil {
		return req, fmt.Errorf("--proto: %w", err)
	}
	req.SPort, req.DPort, req.InIface = f.sport, f.dport, f.inIface
	return req, nil
}

func readDumpFile(name string) (trace.Dump, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return trace.Dump{}, fmt.Errorf("trace: %w", err)
	}
	return trace.Dump{Name: name, Data: b}, nil
}
