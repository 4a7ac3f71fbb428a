package explain

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/knet-dev/knet/cluster"
)

// LooksLikeNFT reports whether data is `nft list ruleset` output or an nft transaction.
func LooksLikeNFT(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		return strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "add table ") ||
			strings.HasPrefix(l, "add chain ") || strings.HasPrefix(l, "add rule ")
	}
	return false
}

// kube-proxy's nftables object names (pkg/proxy/nftables/proxier.go) and what they do.
var nftKubeProxyObjects = map[string]string{
	"filter-prerouting-pre-dnat": "base chain (filter, prerouting, before DNAT): LoadBalancer source-range firewall for incoming traffic",
	"filter-output-pre-dnat":     "base chain (filter, output, before DNAT): LoadBalancer source-range firewall for the node's own traffic",
	"filter-input":               "base chain (filter, input): rejects traffic to NodePorts and Service IPs without endpoints",
	"filter-forward":             "base chain (filter, forward): no-endpoint and invalid-ClusterIP checks for forwarded traffic",
	"filter-output":              "base chain (filter, output): no-endpoint and invalid-ClusterIP checks for the node's own traffic",
	"nat-prerouting":             "base chain (nat, prerouting): sends incoming Service traffic to the dispatch chain",
	"nat-output":                 "base chain (nat, output): sends the node's own Service traffic to the dispatch chain",
	"nat-postrouting":            "base chain (nat, postrouting): masquerades marked traffic",
	"services":                   "dispatch: ClusterIP, external IP and LoadBalancer IP through @service-ips, NodePorts through @service-nodeports",
	"service-ips":                "verdict map: Service IP . protocol . port -> the Service's chain",
	"service-nodeports":          "verdict map: protocol . NodePort -> the Service's external chain",
	"cluster-ips":                "set of every active ClusterIP",
	"nodeport-ips":               "set of node IPs that accept NodePort traffic (--nodeport-addresses)",
	"cluster-ips-check":          "rejects wrong ports of ClusterIPs and drops unallocated ClusterIPs",
	"service-endpoints-check":    "drops or rejects traffic to Service IPs without (local) endpoints",
	"nodeport-endpoints-check":   "drops or rejects NodePort traffic of Services without (local) endpoints",
	"no-endpoint-services":       "verdict map: Service IPs whose Service has no (local) endpoints -> drop or reject",
	"no-endpoint-nodeports":      "verdict map: NodePorts whose Service has no (local) endpoints -> drop or reject",
	"reject-chain":               "helper that rejects (ICMP port unreachable / TCP reset)",
	"firewall-check":             "dispatch of LoadBalancer IPs with loadBalancerSourceRanges through @firewall-ips",
	"firewall-ips":               "verdict map: LoadBalancer IP . protocol . port -> the Service's firewall chain",
	"mark-for-masquerade":        "sets the masquerade mark (0x4000) on a packet",
	"masquerading":               "masquerades packets carrying the mark (then clears it)",
}

var reNFTServiceObject = regexp.MustCompile(`(service|local|external|firewall|endpoint|affinity)-[A-Z2-7]{8}-([a-z0-9.-]+)/([a-z0-9.-]+)/(tcp|udp|sctp)/([a-z0-9-]*)(?:__([0-9a-f.]+)/(\d+))?`)

var reNFTComment = regexp.MustCompile(`comment "([^"]+)"`)

type nftIndex struct {
	pods map[string]string // pod IP -> ns/name
}

// NFT explains `nft list ruleset` output or knftables transaction text line by line:
// kube-proxy's table, its base and helper chains, verdict maps and their elements, the
// per-Service chains (named HASH-namespace/service/protocol/port) and per-endpoint chains,
// and tables of other owners (Calico, firewalld, Docker's iptables-nft compatibility tables).
func NFT(file string, data []byte, objs *cluster.Objects) ([]Record, error) {
	ix := nftIndex{pods: map[string]string{}}
	if objs != nil {
		for _, p := range objs.Pods {
			for _, ip := range p.Status.PodIPs {
				ix.pods[ip.IP] = p.Namespace + "/" + p.Name
			}
			if p.Status.PodIP != "" {
				ix.pods[p.Status.PodIP] = p.Namespace + "/" + p.Name
			}
		}
	}
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	owner, object := Unknown, ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		t := strings.TrimSpace(line)
		rec := Record{File: file, Line: n, Text: line, Kind: owner}
		f := strings.Fields(t)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
			rec.Kind, rec.Meaning = KindStructure, "blank line or comment"
		case t == "}":
			rec.Kind, rec.Meaning = KindStructure, "end of block"
			if object == "" {
				owner = Unknown
			}
			object = ""
		case len(f) >= 3 && f[0] == "table":
			owner = nftTableOwner(f[2])
			rec.Kind, rec.Meaning = owner, fmt.Sprintf("nftables table %s of family %s, %s", f[2], f[1], nftOwnerWords(owner))
		case len(f) >= 4 && f[0] == "add":
			// knftables transaction: add table|chain|set|map|rule|element FAMILY TABLE NAME ...
			if f[1] == "table" {
				owner = nftTableOwner(f[3])
				rec.Kind, rec.Meaning = owner, fmt.Sprintf("creates table %s (%s)", f[3], nftOwnerWords(owner))
				break
			}
			rec.Kind = nftTableOwner(f[3])
			if len(f) >= 5 {
				explainNFTObject(&rec, ix, f[1], f[4], t)
			}
		case len(f) >= 2 && (f[0] == "chain" || f[0] == "set" || f[0] == "map"):
			object = f[1]
			explainNFTObject(&rec, ix, f[0], f[1], t)
		case object != "":
			explainNFTLine(&rec, ix, object, t)
		default:
			rec.Meaning = "table property"
		}
		if rec.Meaning == "" {
			rec.Kind, rec.Meaning = Unknown, "not recognised"
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, nil
}

func nftTableOwner(name string) Kind {
	switch {
	case name == "kube-proxy":
		return KindKubeProxy
	case strings.HasPrefix(name, "calico"):
		return KindCalico
	case name == "firewalld":
		return KindFirewalld
	case strings.HasPrefix(name, "cilium"):
		return KindCilium
	case name == "filter" || name == "nat" || name == "mangle" || name == "raw":
		return Kind("iptables-nft")
	}
	return Unknown
}

func nftOwnerWords(k Kind) string {
	switch k {
	case KindKubeProxy:
		return "written by kube-proxy in nftables mode"
	case Kind("iptables-nft"):
		return "an iptables-nft compatibility table (rules written with iptables on the nf_tables backend: read them with iptables-save)"
	case Unknown:
		return "owner not recognised"
	}
	return "written by " + string(k)
}

// explainNFTObject explains a chain, set or map declaration (or any transaction line).
func explainNFTObject(rec *Record, ix nftIndex, kind, name, text string) {
	if m, ok := nftKubeProxyObjects[name]; ok {
		rec.Meaning = m
		if kind == "rule" {
			rec.Meaning = "rule in " + name + ": " + m
		}
		if kind == "element" {
			explainNFTElement(rec, ix, name, text)
		}
		return
	}
	if m := reNFTServiceObject.FindStringSubmatch(name); m != nil {
		explainServiceObject(rec, ix, m, kind)
		return
	}
	if rec.Kind == KindKubeProxy {
		rec.Meaning = fmt.Sprintf("%s %s of kube-proxy", kind, name)
	}
}

func explainServiceObject(rec *Record, ix nftIndex, m []string, kind string) {
	spn := m[2] + "/" + m[3]
	if m[5] != "" {
		spn += ":" + m[5]
	}
	rec.Refs.Service = m[2] + "/" + m[3]
	rec.Refs.Port = m[5]
	rec.Kind = KindKubeProxy
	what := map[string]string{
		"service":  "Cluster-policy endpoints of " + spn + " (" + m[4] + "): picks one with numgen random",
		"local":    "node-local endpoints of " + spn + " (" + m[4] + ", traffic policy Local)",
		"external": "external traffic (NodePort, LoadBalancer, external IP) of " + spn + ": masquerade or short-circuit, then the policy chain",
		"firewall": "loadBalancerSourceRanges of " + spn + ": drops sources outside the ranges",
		"endpoint": "endpoint " + m[6] + ":" + m[7] + " of " + spn + ": hairpin masquerade, affinity, DNAT",
		"affinity": "ClientIP session affinity of " + spn + " to endpoint " + m[6] + ":" + m[7] + " (timeout set)",
	}[m[1]]
	if m[6] != "" {
		ip := m[6]
		if strings.Count(ip, ".") > 3 {
			ip = strings.ReplaceAll(ip, ".", ":")
		}
		rec.Refs.Endpoint = ip + ":" + m[7]
		if pod, ok := ix.pods[ip]; ok {
			rec.Refs.Pod = pod
			what += " (pod " + pod + ")"
		}
	}
	rec.Meaning = kind + ": " + what
}

func explainNFTElement(rec *Record, ix nftIndex, set, text string) {
	m := reNFTServiceObject.FindStringSubmatch(text)
	base := nftKubeProxyObjects[set]
	if m == nil {
		if c := reNFTComment.FindStringSubmatch(text); c != nil {
			rec.Meaning = base + ": " + c[1]
			name, port, _ := strings.Cut(c[1], ":")
			rec.Refs.Service, rec.Refs.Port = name, port
			return
		}
		rec.Meaning = "element of " + set + " (" + base + ")"
		return
	}
	explainServiceObject(rec, ix, m, "element")
	rec.Meaning = "element of " + set + " -> " + strings.TrimPrefix(rec.Meaning, "element: ")
}

// explainNFTLine explains a line inside a chain, set or map block of `nft list ruleset`.
func explainNFTLine(rec *Record, ix nftIndex, object, t string) {
	switch {
	case strings.HasPrefix(t, "type ") && strings.Contains(t, " hook "):
		rec.Meaning = "base chain attachment: " + t
		return
	case strings.HasPrefix(t, "type "), strings.HasPrefix(t, "flags "), strings.HasPrefix(t, "size "), strings.HasPrefix(t, "timeout "), strings.HasPrefix(t, "comment "), strings.HasPrefix(t, "policy "):
		rec.Meaning = "property of " + object
		return
	}
	if strings.HasPrefix(t, "elements = ") || (!strings.Contains(t, " jump ") && strings.Contains(t, " : ")) {
		explainNFTElement(rec, ix, object, t)
		return
	}
	if m := reNFTServiceObject.FindStringSubmatch(object); m != nil {
		explainServiceObject(rec, ix, m, "rule")
		switch {
		case strings.Contains(t, "dnat to"):
			rec.Meaning += "; this rule rewrites the destination to the endpoint"
		case strings.Contains(t, "jump mark-for-masquerade"):
			rec.Meaning += "; this rule marks the packet for masquerade"
		case strings.HasPrefix(t, "numgen"):
			rec.Meaning += "; this rule load-balances, each endpoint equally likely"
		}
		return
	}
	if m, ok := nftKubeProxyObjects[object]; ok {
		rec.Meaning = "rule of " + object + ": " + m
		return
	}
	if rec.Kind != Unknown {
		rec.Meaning = "rule of chain " + object + " (" + string(rec.Kind) + ")"
	}
}
