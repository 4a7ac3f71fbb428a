// Package collect takes a read-only snapshot of the network namespace knet runs in — a
// Kubernetes node's host namespace when knet runs on the node, or in a privileged pod with
// hostNetwork as netshoot is used. Links, addresses, routes of every table, policy rules,
// neighbours and fdb come from netlink dumps (kernel.Read); iptables from iptables-save
// (the nft backend, and the legacy one when it also holds rules); ipsets from `ipset save`;
// IPVS from `ipvsadm-save -n`; nftables from `nft list ruleset`; pods from
// `crictl pods -o json`; the sysctls that matter from /proc/sys. Nothing is written to the
// kernel: only dumps and reads. What cannot be read (a missing tool, a missing capability,
// a module not loaded) is recorded in meta.json with the reason, and the rest is written.
package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/cri"
	"github.com/knet-dev/knet/format/crictl"
	"github.com/knet-dev/knet/format/ipset"
	"github.com/knet-dev/knet/format/ipvsadm"
	"github.com/knet-dev/knet/format/nft"
	"github.com/knet-dev/knet/kernel"
	"github.com/knet-dev/knet/snapshot"
)

// Sysctls are the sysctls (below /proc/sys/net) the collector reads; per-interface
// rp_filter, proxy_arp and route_localnet are added for every link.
var defaultSysctls = []string{
	"ipv4/ip_forward",
	"ipv4/conf/all/rp_filter",
	"ipv4/conf/default/rp_filter",
	"ipv4/conf/all/route_localnet",
	"netfilter/nf_conntrack_max",
	"netfilter/nf_conntrack_count",
	"netfilter/nf_conntrack_tcp_be_liberal",
	"ipv4/vs/conntrack",
	"ipv4/vs/conn_reuse_mode",
	"ipv4/vs/expire_nodest_conn",
}

// Options tune a collection.
type Options struct {
	// Node names the node (default: the hostname).
	Node string
	// Now is the snapshot time (default time.Now).
	Now func() time.Time
}

// Collect writes a snapshot of the current network namespace to dir and returns its meta.
func Collect(ctx context.Context, dir string, o Options) (*snapshot.Meta, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	meta := &snapshot.Meta{Node: o.Node, Time: o.Now().UTC(), Tools: map[string]string{}}
	if meta.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("collect: node name: %w", err)
		}
		meta.Node = h
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		meta.Kernel = strings.TrimSpace(string(b))
	}
	ns, err := kernel.CurrentNS()
	if err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	defer ns.Close()
	unreadable := func(what string, err error) {
		meta.Unreadable = append(meta.Unreadable, fmt.Sprintf("%s: %v", what, err))
	}
	has := func(tool string) bool {
		_, err := exec.LookPath(tool)
		if err != nil {
			unreadable(tool, errors.New("not installed"))
		}
		return err == nil
	}
	haveIPT, haveIP6T := has("iptables-save"), has("ip6tables-save")
	node, notes, err := kernel.Read(ctx, ns, kernel.ReadOptions{IPTables: haveIPT, IP6Tables: haveIP6T})
	if err != nil {
		// Without the iptables part (e.g. no CAP_NET_ADMIN for iptables-save) netlink may
		// still work.
		unreadable("iptables-save", err)
		node, notes, err = kernel.Read(ctx, ns, kernel.ReadOptions{})
		if err != nil {
			return nil, fmt.Errorf("collect: %w", err)
		}
	}
	for _, n := range notes {
		meta.Unreadable = append(meta.Unreadable, "not modelled: "+n)
	}
	raw := map[string][]byte{}
	run := func(name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
		}
		return out.Bytes(), nil
	}
	version := func(tool string, args ...string) {
		if out, err := run(tool, args...); err == nil {
			meta.Tools[tool] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	if haveIPT {
		version("iptables-save", "--version")
		if out, err := run("iptables-save"); err == nil {
			raw[snapshot.IPTablesFile] = out
		}
		// A node can hold rules in both backends (an old kube-proxy on legacy, a new one
		// on nft): keep the legacy dump too when it has any rule.
		if _, err := exec.LookPath("iptables-legacy-save"); err == nil {
			if out, err := run("iptables-legacy-save"); err == nil && bytes.Contains(out, []byte("\n-A ")) {
				raw["iptables-legacy-save.txt"] = out
			}
		}
	}
	if haveIP6T {
		if out, err := run("ip6tables-save"); err == nil {
			raw[snapshot.IP6TablesFile] = out
		}
	}
	if has("ipset") {
		version("ipset", "version")
		if out, err := run("ipset", "save"); err != nil {
			unreadable("ipset save", err)
		} else if d, err := ipset.Parse("ipset save", out); err != nil {
			unreadable("ipset save", err)
		} else {
			node.IPSets = d.Sets
			raw[snapshot.IPSetFile] = out
		}
	}
	if has("ipvsadm") {
		version("ipvsadm", "--version")
		if out, err := run("ipvsadm", "-S", "-n"); err != nil {
			unreadable("ipvsadm -S -n", err)
		} else if d, err := ipvsadm.Parse("ipvsadm -S -n", out); err != nil {
			unreadable("ipvsadm -S -n", err)
		} else {
			node.IPVS = d.State
			raw[snapshot.IPVSFile] = out
		}
	}
	if has("nft") {
		version("nft", "--version")
		if out, err := run("nft", "list", "ruleset"); err != nil {
			unreadable("nft list ruleset", err)
		} else if rs, _, err := nft.Parse(bytes.NewReader(out), "nft list ruleset"); err != nil {
			unreadable("nft list ruleset", err)
		} else {
			node.NFTables = rs
			raw[snapshot.NFTFile] = out
		}
	}
	if _, err := exec.LookPath("crictl"); err == nil {
		if out, err := run("crictl", "pods", "-o", "json"); err != nil {
			unreadable("crictl pods", err)
		} else {
			st := &cri.State{}
			if err := crictl.ParsePodsJSON(st, "crictl pods -o json", out); err != nil {
				unreadable("crictl pods", err)
			} else {
				node.CRI = st
				raw[snapshot.CrictlFile] = out
			}
		}
	} else {
		unreadable("crictl", errors.New("not installed (no pod list)"))
	}
	node.Sysctls = readSysctls(node, unreadable)
	node.Name = meta.Node
	sort.Strings(meta.Unreadable)
	if err := snapshot.Write(dir, node, *meta); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	// The tools' own output is the evidence: keep it byte for byte where knet read it.
	for name, b := range raw {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, fmt.Errorf("collect: %w", err)
		}
	}
	return meta, nil
}

func readSysctls(node *dataplane.Node, unreadable func(string, error)) map[string]string {
	keys := append([]string(nil), defaultSysctls...)
	if node.Net != nil {
		for _, l := range node.Net.Links {
			for _, k := range []string{"rp_filter", "proxy_arp", "route_localnet", "forwarding"} {
				keys = append(keys, "ipv4/conf/"+l.Name+"/"+k)
			}
		}
	}
	out := map[string]string{}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join("/proc/sys/net", k))
		if err != nil {
			if strings.HasPrefix(k, "ipv4/vs/") || strings.HasPrefix(k, "netfilter/") {
				continue // module not loaded: nothing to report per key
			}
			unreadable("sysctl net/"+k, err)
			continue
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out
}
