// Package snapshot is the on-disk form of one node's network state, as `knet collect`
// writes it on a real node and as knet writes it for an emulated one: a folder of the
// native tools' outputs (so a person can read it, and so a support case can attach it)
// plus meta.json naming the node, the kernel, the tool versions, the time and whatever
// could not be read and why.
//
//	DIR/meta.json                  Meta
//	DIR/ip-addr.txt                `ip -d addr show` (links and addresses)
//	DIR/ip-route.txt               `ip route show table all`
//	DIR/ip-rule.txt                `ip rule show`
//	DIR/ip-neigh.txt               `ip neigh show`
//	DIR/bridge-fdb.txt             `bridge fdb show`
//	DIR/iptables-save.txt          `iptables-save` (IPv4)
//	DIR/ip6tables-save.txt         `ip6tables-save`
//	DIR/ipset-save.txt             `ipset save`
//	DIR/ipvsadm-save.txt           `ipvsadm-save -n`
//	DIR/nft-ruleset.txt            `nft list ruleset`
//	DIR/crictl-pods.json           `crictl pods -o json`
//	DIR/sysctl.txt                 `key = value` lines for the sysctls that matter
//
// Load reads such a folder back into a dataplane.Node with knet's parsers; every file is
// optional (a node without IPVS has no ipvsadm-save.txt), and what a parser did not
// understand comes back as a problem with its file and line.
package snapshot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/cri"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/crictl"
	"github.com/knet-dev/knet/format/iproute"
	"github.com/knet-dev/knet/format/ipset"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/format/ipvsadm"
	"github.com/knet-dev/knet/format/nft"
)

// File names inside a snapshot folder.
const (
	MetaFile      = "meta.json"
	IPAddrFile    = "ip-addr.txt"
	IPRouteFile   = "ip-route.txt"
	IPRuleFile    = "ip-rule.txt"
	IPNeighFile   = "ip-neigh.txt"
	BridgeFDBFile = "bridge-fdb.txt"
	IPTablesFile  = "iptables-save.txt"
	IP6TablesFile = "ip6tables-save.txt"
	IPSetFile     = "ipset-save.txt"
	IPVSFile      = "ipvsadm-save.txt"
	NFTFile       = "nft-ruleset.txt"
	CrictlFile    = "crictl-pods.json"
	SysctlFile    = "sysctl.txt"
)

// Meta describes a snapshot.
type Meta struct {
	// Node is the Kubernetes node name (the hostname on a real node).
	Node string `json:"node"`
	// Kernel is `uname -r`; Emulated marks a snapshot written from a rendered model.
	Kernel   string `json:"kernel,omitempty"`
	Emulated bool   `json:"emulated,omitempty"`
	// Tools are the versions of the tools whose output the folder holds.
	Tools map[string]string `json:"tools,omitempty"`
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
	// Unreadable lists what could not be collected and why ("ipvsadm: IPVS not available").
	Unreadable []string `json:"unreadable,omitempty"`
}

// Problem is something Load could not use, with its place.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return p.File + ": " + p.Message
}

// Load reads the snapshot in dir.
func Load(dir string) (*dataplane.Node, *Meta, []Problem, error) {
	meta := &Meta{}
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, meta); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, MetaFile), err)
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil, fmt.Errorf("%s is not a knet snapshot: no %s", dir, MetaFile)
	default:
		return nil, nil, nil, err
	}
	// An empty stack: the dumps say everything, loopback included.
	n := &dataplane.Node{Name: meta.Node, Net: &route.Stack{}}
	var probs []Problem
	read := func(name string) ([]byte, string, bool, error) {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, p, false, nil
		}
		return data, p, err == nil, err
	}
	addIP := func(ps iproute.Problems) {
		for _, p := range ps {
			probs = append(probs, Problem{File: p.File, Line: p.Line, Message: p.Msg})
		}
	}
	for _, f := range []struct {
		name  string
		parse func(path string, data []byte)
	}{
		{IPAddrFile, func(p string, d []byte) { addIP(iproute.ParseAddrs(n.Net, p, d)) }},
		{IPRouteFile, func(p string, d []byte) { addIP(iproute.ParseRoutes(n.Net, p, d, iproute.Options{Table: "all"})) }},
		{IPRuleFile, func(p string, d []byte) { addIP(iproute.ParseRules(n.Net, p, d)) }},
		{IPNeighFile, func(p string, d []byte) { addIP(iproute.ParseNeighs(n.Net, p, d)) }},
		{BridgeFDBFile, func(p string, d []byte) { addIP(iproute.ParseFDB(n.Net, p, d, "")) }},
	} {
		data, path, ok, err := read(f.name)
		if err != nil {
			return nil, nil, nil, err
		}
		if ok {
			f.parse(path, data)
		}
	}
	if len(n.Net.Rules) == 0 {
		// No `ip rule` dump: the kernel's default policy rules.
		n.Net.Rules = route.New().Rules
	}
	for _, f := range []struct {
		name string
		fam  netfilter.Family
		dst  **netfilter.Ruleset
	}{{IPTablesFile, netfilter.IPv4, &n.IPTables}, {IP6TablesFile, netfilter.IPv6, &n.IP6Tables}} {
		data, path, ok, err := read(f.name)
		if err != nil {
			return nil, nil, nil, err
		}
		if !ok {
			continue
		}
		rs, diags, err := iptablessave.ParseFamily(bytes.NewReader(data), path, f.fam)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, d := range diags {
			probs = append(probs, Problem{File: d.File, Line: d.Line, Message: d.Message})
		}
		*f.dst = rs
	}
	if data, path, ok, err := read(IPSetFile); err != nil {
		return nil, nil, nil, err
	} else if ok {
		d, err := ipset.Parse(path, data)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, s := range d.Skipped {
			probs = append(probs, Problem{File: path, Line: s.Line, Message: s.Reason})
		}
		n.IPSets = d.Sets
	}
	if data, path, ok, err := read(IPVSFile); err != nil {
		return nil, nil, nil, err
	} else if ok {
		d, err := ipvsadm.Parse(path, data)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, s := range d.Skipped {
			probs = append(probs, Problem{File: path, Line: s.Line, Message: s.Reason})
		}
		n.IPVS = d.State
	}
	if data, path, ok, err := read(NFTFile); err != nil {
		return nil, nil, nil, err
	} else if ok {
		rs, diags, err := nft.Parse(bytes.NewReader(data), path)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, d := range diags {
			probs = append(probs, Problem{File: d.File, Line: d.Line, Message: d.Message})
		}
		if err := rs.ParseRules(); err != nil {
			probs = append(probs, Problem{File: path, Message: err.Error()})
		}
		n.NFTables = rs
	}
	if data, path, ok, err := read(CrictlFile); err != nil {
		return nil, nil, nil, err
	} else if ok {
		st := &cri.State{}
		if err := crictl.ParsePodsJSON(st, path, data); err != nil {
			return nil, nil, nil, err
		}
		n.CRI = st
	}
	if data, path, ok, err := read(SysctlFile); err != nil {
		return nil, nil, nil, err
	} else if ok {
		n.Sysctls = map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for line := 1; sc.Scan(); line++ {
			t := strings.TrimSpace(sc.Text())
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			k, v, ok := strings.Cut(t, "=")
			if !ok {
				probs = append(probs, Problem{File: path, Line: line, Message: fmt.Sprintf("not `key = value`: %q", t)})
				continue
			}
			n.Sysctls[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return n, meta, probs, nil
}

// Write writes node n as a snapshot in dir (created if missing), with every part n has.
func Write(dir string, n *dataplane.Node, meta Meta) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if meta.Node == "" {
		meta.Node = n.Name
	}
	files := map[string]func(*bytes.Buffer) error{}
	if n.Net != nil {
		files[IPAddrFile] = func(b *bytes.Buffer) error { return iproute.PrintAddrs(b, n.Net, iproute.Options{Details: true}) }
		files[IPRouteFile] = func(b *bytes.Buffer) error { return iproute.PrintRoutes(b, n.Net, iproute.Options{Table: "all"}) }
		files[IPRuleFile] = func(b *bytes.Buffer) error { return iproute.PrintRules(b, n.Net, iproute.Options{}) }
		files[IPNeighFile] = func(b *bytes.Buffer) error { return iproute.PrintNeighs(b, n.Net, iproute.Options{}) }
		files[BridgeFDBFile] = func(b *bytes.Buffer) error { return iproute.PrintFDB(b, n.Net, iproute.Options{}) }
	}
	if n.IPTables != nil {
		files[IPTablesFile] = func(b *bytes.Buffer) error {
			return iptablessave.Write(b, n.IPTables, iptablessave.WriteOptions{Time: meta.Time})
		}
	}
	if n.IP6Tables != nil {
		files[IP6TablesFile] = func(b *bytes.Buffer) error {
			return iptablessave.Write(b, n.IP6Tables, iptablessave.WriteOptions{Time: meta.Time})
		}
	}
	if n.IPSets != nil {
		files[IPSetFile] = func(b *bytes.Buffer) error { return ipset.WriteSave(b, n.IPSets, ipset.Options{}) }
	}
	if n.IPVS != nil {
		files[IPVSFile] = func(b *bytes.Buffer) error { return ipvsadm.WriteSave(b, n.IPVS) }
	}
	if n.NFTables != nil {
		files[NFTFile] = func(b *bytes.Buffer) error { return nft.Write(b, n.NFTables, nft.WriteOptions{}) }
	}
	if len(n.Sysctls) > 0 {
		files[SysctlFile] = func(b *bytes.Buffer) error {
			keys := make([]string, 0, len(n.Sysctls))
			for k := range n.Sysctls {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(b, "%s = %s\n", k, n.Sysctls[k])
			}
			return nil
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		var b bytes.Buffer
		if err := files[name](&b); err != nil {
			return fmt.Errorf("snapshot %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, MetaFile), append(mb, '\n'), 0o644)
}
