package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/trace"
)

// traceFlags are `knet trace`'s flags. The from-dumps form is implemented here; the cluster
// form (--preset/-f, --from, --to) belongs to the cross-node tracer (trace/cluster*.go) and
// returns a "not yet" error until it lands.
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
	fl.StringVar(&f.ipvsadm, "ipvsadm", "", "ipvsadm -Ln output file (IPVS tracing is not implemented yet)")
	fl.StringVar(&f.ipset, "ipset", "", "ipset save (or ipset list) output file for -m set matches")
	fl.StringVar(&f.ipAddr, "ip-addr", "", "ip addr output file (the node's local addresses)")
	fl.StringVar(&f.ipRoute, "ip-route", "", "ip route show table all output file (routing decision and output device)")
	fl.StringSliceVar(&f.localIPs, "local-ip", nil, "the node's local addresses, comma-separated (added to --ip-addr's)")
	fl.StringVar(&f.src, "src", "", "source address")
	fl.StringVar(&f.dst, "dst", "", "destination address")
	fl.Uint16Var(&f.sport, "sport", 0, fmt.Sprintf("source port (default %d)", trace.DefaultSPort))
	fl.Uint16Var(&f.dport, "dport", 0, "destination port")
	fl.StringVar(&f.proto, "proto", "tcp", "protocol: tcp, udp or sctp")
	fl.StringVar(&f.inIface, "in-iface", "", "interface the packet arrives on (for a packet from the network)")
	fl.StringVar(&f.node, "node", "node", "node name shown in the path")
	fl.StringVar(&f.preset, "preset", "", "trace in an embedded cluster (cluster-a, cluster-b, cluster-c)")
	fl.StringVarP(&f.file, "file", "f", "", "trace in the cluster described by this file")
	fl.StringVar(&f.from, "from", "", "cluster form: the client (POD, NODE or IP)")
	fl.StringVar(&f.to, "to", "", "cluster form: the destination (SERVICE[:PORT], POD or IP:PORT)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text, json or yaml")
	return cmd
}

func runTrace(cmd *cobra.Command, s Streams, f *traceFlags) error {
	format, err := trace.ParseFormat(f.output)
	if err != nil {
		return err
	}
	if f.preset != "" || f.file != "" || f.from != "" || f.to != "" {
		// TODO(cluster tracer): the cross-node tracer in trace/cluster*.go wires in here.
		return notYet("knet trace --preset/-f/--from/--to (the cluster form)", 2)
	}
	if f.ipvsadm != "" {
		return notYet("knet trace --ipvsadm (IPVS from dumps)", 2)
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
	return res.Write(s.Out, format)
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
