// Package nodecmd emulates the commands an operator runs on a Kubernetes node — `ip`,
// `bridge`, `crictl`, `iptables-save`, `iptables -L`, `ipvsadm`, `ipset`, `nft`, `conntrack`
// — against a dataplane.Node, printing what the real tool prints (the versions the format
// packages mirror: iproute2 6.1.0, iptables 1.8.9 (nf_tables), ipvsadm 1.31, crictl 1.32+,
// nft 1.0.6). Run takes an argv as a shell would split it; a command or option the emulator
// does not know is an error that names what it supports.
package nodecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/knet-dev/knet/dataplane"
	nf "github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/format/crictl"
	"github.com/knet-dev/knet/format/iproute"
	"github.com/knet-dev/knet/format/ipset"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/format/ipvsadm"
	"github.com/knet-dev/knet/format/nft"
)

// Supported lists the command forms Run understands, for help and errors.
var supported = []string{
	"ip [-4|-6] [-d] [-o] addr|link|route|rule|neigh [show [dev X] [table T]]",
	"bridge fdb show [dev X]",
	"crictl ps|pods [-q] [--no-trunc]",
	"iptables-save [-t TABLE] [-c]",
	"iptables [-t TABLE] -L [CHAIN] -n [-v] [-x] [--line-numbers]",
	"ipvsadm -Ln [--stats|--rate] [--exact]",
	"ipset list|save",
	"nft [-j] list ruleset",
	"conntrack -L",
}

// Supported returns the command forms Run understands.
func Supported() []string { return append([]string(nil), supported...) }

// Env is what a command sees besides the node: the clock (`crictl` CREATED, iptables-save's
// header date).
type Env struct {
	Now time.Time
}

// Run runs argv on node n and writes the command's output to w, with the current time.
func Run(ctx context.Context, n *dataplane.Node, argv []string, w io.Writer) error {
	return RunEnv(ctx, n, argv, w, Env{Now: time.Now()})
}

// UsageError is a command line the emulator does not understand.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string {
	return e.Msg + "; the emulator supports:\n  " + strings.Join(supported, "\n  ")
}

func usage(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// RunEnv is Run with an explicit environment.
func RunEnv(ctx context.Context, n *dataplane.Node, argv []string, w io.Writer, env Env) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(argv) == 0 {
		return usage("no command")
	}
	if n == nil {
		return errors.New("no node")
	}
	switch argv[0] {
	case "ip":
		return runIP(n, argv[1:], w)
	case "bridge":
		return runBridge(n, argv[1:], w)
	case "crictl":
		return runCrictl(n, argv[1:], w, env)
	case "iptables-save", "iptables-nft-save":
		return runIPTablesSave(n, argv[1:], w, env)
	case "iptables", "iptables-nft":
		return runIPTables(n, argv[1:], w)
	case "ipvsadm":
		return runIPVSAdm(n, argv[1:], w)
	case "ipset":
		return runIPSet(n, argv[1:], w)
	case "nft":
		return runNFT(n, argv[1:], w)
	case "conntrack":
		return errors.New("conntrack output is not available yet (no conntrack -L printer in knet's format packages)")
	}
	return usage("%s: command not found in the emulator", argv[0])
}

func runIP(n *dataplane.Node, args []string, w io.Writer) error {
	if n.Net == nil {
		return errors.New("ip: this namespace has no routing state")
	}
	var o iproute.Options
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-4":
			o.Family = iproute.Family4
		case "-6":
			o.Family = iproute.Family6
		case "-d", "-details", "--details":
			o.Details = true
		case "-o", "-oneline", "--oneline":
			o.Oneline = true
		default:
			return usage("ip: option %q is not emulated", args[0])
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return usage("ip: missing object (addr, link, route, rule, neigh)")
	}
	obj := args[0]
	args = args[1:]
	if len(args) > 0 && (args[0] == "show" || args[0] == "list" || args[0] == "ls" || args[0] == "lst") {
		args = args[1:]
	}
	for len(args) > 0 {
		switch {
		case args[0] == "dev" && len(args) > 1:
			if n.Net.LinkByName(args[1]) == nil {
				return fmt.Errorf("Device \"%s\" does not exist.", args[1])
			}
			o.Dev = args[1]
			args = args[2:]
		case args[0] == "table" && len(args) > 1:
			o.Table = args[1]
			args = args[2:]
		default:
			return usage("ip %s: argument %q is not emulated", obj, args[0])
		}
	}
	switch {
	case prefixOf(obj, "address", 1):
		return iproute.PrintAddrs(w, n.Net, o)
	case prefixOf(obj, "link", 1):
		return iproute.PrintLinks(w, n.Net, o)
	case prefixOf(obj, "route", 1):
		return iproute.PrintRoutes(w, n.Net, o)
	case prefixOf(obj, "rule", 2):
		return iproute.PrintRules(w, n.Net, o)
	case prefixOf(obj, "neighbour", 1) || prefixOf(obj, "neighbor", 1):
		return iproute.PrintNeighs(w, n.Net, o)
	}
	return usage("ip: object %q is not emulated", obj)
}

// prefixOf reports whether s abbreviates full (iproute2 accepts unique prefixes) with at
// least min letters.
func prefixOf(s, full string, min int) bool {
	return len(s) >= min && strings.HasPrefix(full, s)
}

func runBridge(n *dataplane.Node, args []string, w io.Writer) error {
	if n.Net == nil {
		return errors.New("bridge: this namespace has no routing state")
	}
	if len(args) < 1 || args[0] != "fdb" {
		return usage("bridge: only `bridge fdb show` is emulated")
	}
	args = args[1:]
	if len(args) > 0 && args[0] == "show" {
		args = args[1:]
	}
	var o iproute.Options
	if len(args) == 2 && args[0] == "dev" {
		o.Dev = args[1]
		args = nil
	}
	if len(args) != 0 {
		return usage("bridge fdb show: argument %q is not emulated", args[0])
	}
	return iproute.PrintFDB(w, n.Net, o)
}

func runCrictl(n *dataplane.Node, args []string, w io.Writer, env Env) error {
	if n.CRI == nil {
		return errors.New("crictl: no container runtime state on this node (pod namespaces have none)")
	}
	if len(args) == 0 {
		return usage("crictl: missing command (ps, pods)")
	}
	o := crictl.Options{Now: env.Now}
	cmd := args[0]
	for _, a := range args[1:] {
		switch a {
		case "-q", "--quiet":
			o.Quiet = true
		case "--no-trunc":
			o.NoTrunc = true
		case "-a", "--all":
			// every container is running; -a lists the same ones
		default:
			return usage("crictl %s: option %q is not emulated", cmd, a)
		}
	}
	switch cmd {
	case "ps":
		return crictl.PrintPS(w, n.CRI, o)
	case "pods":
		return crictl.PrintPods(w, n.CRI, o)
	}
	return usage("crictl: command %q is not emulated", cmd)
}

func runIPTablesSave(n *dataplane.Node, args []string, w io.Writer, env Env) error {
	if n.IPTables == nil {
		return errors.New("iptables-save: no iptables state on this node")
	}
	o := iptablessave.WriteOptions{Time: env.Now}
	for len(args) > 0 {
		switch {
		case (args[0] == "-t" || args[0] == "--table") && len(args) > 1:
			t := nf.TableName(args[1])
			if !t.Valid() {
				return fmt.Errorf("iptables-save v1.8.9 (nf_tables): Cannot initialize: Table does not exist (do you need to insmod?)")
			}
			o.Table = t
			args = args[2:]
		case args[0] == "-c" || args[0] == "--counters":
			o.Counters = true
			args = args[1:]
		default:
			return usage("iptables-save: option %q is not emulated", args[0])
		}
	}
	return iptablessave.Write(w, n.IPTables, o)
}

func runIPTables(n *dataplane.Node, args []string, w io.Writer) error {
	if n.IPTables == nil {
		return errors.New("iptables: no iptables state on this node")
	}
	table := nf.TableName("filter")
	var f listFormat
	list, chain := false, ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-t" || a == "--table":
			if i+1 >= len(args) {
				return usage("iptables: -t needs a table")
			}
			table = nf.TableName(args[i+1])
			i++
		case a == "-L" || a == "--list":
			list = true
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				chain = args[i+1]
				i++
			}
		case a == "-n" || a == "--numeric":
			f.numeric = true
		case a == "-v" || a == "--verbose":
			f.verbose = true
		case a == "-x" || a == "--exact":
			f.exact = true
		case a == "--line-numbers":
			f.lineNumbers = true
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(a) > 2:
			// Combined short options: -nL, -nvL, -Lnv.
			var expanded []string
			for _, c := range a[1:] {
				expanded = append(expanded, "-"+string(c))
			}
			args = append(append(append([]string(nil), args[:i]...), expanded...), args[i+1:]...)
			i--
		default:
			return usage("iptables: option %q is not emulated", a)
		}
	}
	if !list {
		return usage("iptables: only listing (-L) is emulated")
	}
	if !f.numeric {
		return usage("iptables -L: give -n (name and service lookups are not emulated)")
	}
	if !table.Valid() {
		return fmt.Errorf("iptables v1.8.9 (nf_tables): table '%s' does not exist", table)
	}
	t := n.IPTables.Table(table)
	if t == nil {
		t = nf.NewTable(table)
	}
	return writeList(w, n.IPTables, t, chain, f)
}

func runIPVSAdm(n *dataplane.Node, args []string, w io.Writer) error {
	var o ipvsadm.ListOptions
	o.View = ipvsadm.ViewDefault
	list, numeric := false, false
	for _, a := range args {
		switch a {
		case "-L", "-l", "--list":
			list = true
		case "-n", "--numeric":
			numeric = true
		case "-Ln", "-ln", "-nL", "-nl":
			list, numeric = true, true
		case "--stats":
			o.View = ipvsadm.ViewStats
		case "--rate":
			o.View = ipvsadm.ViewRate
		case "--exact":
			o.Exact = true
		default:
			return usage("ipvsadm: option %q is not emulated", a)
		}
	}
	if !list || !numeric {
		return usage("ipvsadm: only `ipvsadm -Ln` listings are emulated (name resolution is not)")
	}
	if n.IPVS == nil {
		return errors.New("ipvsadm: no IPVS state on this node (kube-proxy is not in IPVS mode, or this is a pod namespace)")
	}
	return ipvsadm.WriteList(w, n.IPVS, o)
}

func runIPSet(n *dataplane.Node, args []string, w io.Writer) error {
	if len(args) == 0 {
		return usage("ipset: missing command (list, save)")
	}
	if n.IPSets == nil {
		return errors.New("ipset: no ipsets on this node")
	}
	switch args[0] {
	case "list", "-L", "-l":
		if len(args) > 1 {
			return usage("ipset list: only listing every set is emulated")
		}
		return ipset.WriteList(w, n.IPSets, ipset.Options{})
	case "save", "-S":
		return ipset.WriteSave(w, n.IPSets, ipset.Options{})
	}
	return usage("ipset: command %q is not emulated", args[0])
}

func runNFT(n *dataplane.Node, args []string, w io.Writer) error {
	asJSON := len(args) > 0 && (args[0] == "-j" || args[0] == "--json")
	if asJSON {
		args = args[1:]
	}
	if strings.Join(args, " ") != "list ruleset" {
		return usage("nft: only `nft [-j] list ruleset` is emulated")
	}
	rs := n.NFTables
	if asJSON {
		if rs == nil {
			rs = &nftables.Ruleset{}
		}
		return nft.WriteJSON(w, rs, nft.WriteOptions{})
	}
	if rs == nil {
		return nil // an empty ruleset prints nothing
	}
	return nft.Write(w, rs, nft.WriteOptions{})
}

// Namespace returns the namespace addressed by target on node: "" for the host, else a
// pod given as "POD" or "NAMESPACE/POD".
func Namespace(node *dataplane.Node, pod string) (*dataplane.Node, error) {
	if pod == "" {
		return node, nil
	}
	if p, ok := node.Pods[pod]; ok {
		return p, nil
	}
	var matches []string
	for k := range node.Pods {
		if _, name, _ := strings.Cut(k, "/"); name == pod {
			matches = append(matches, k)
		}
	}
	sort.Strings(matches)
	switch len(matches) {
	case 1:
		return node.Pods[matches[0]], nil
	case 0:
		var have []string
		for k := range node.Pods {
			have = append(have, k)
		}
		sort.Strings(have)
		return nil, fmt.Errorf("node %s has no pod %q (its pods: %s)", node.Name, pod, strings.Join(have, ", "))
	}
	return nil, fmt.Errorf("pod name %q is ambiguous on node %s: %s (give NAMESPACE/POD)", pod, node.Name, strings.Join(matches, ", "))
}
