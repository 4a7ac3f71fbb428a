// Package nft prints and parses nftables text: `nft list ruleset` as nftables v1.0.6
// prints it (Debian 12's nft; the version is a WriteOptions field), and the transaction
// syntax knftables writes (`add table|chain|set|map|rule|element ...`, the form of
// kube-proxy's own expected test dumps).
//
// `nft list ruleset` does not print what was written: it lists sets and maps before
// chains, both in creation order; simplifies anonymous sets of one element; prints marks
// as 8-digit hex with `&`, `|`, `^`; names standard chain priorities ("dstnat - 10");
// and sorts set elements — by value for a single data type, and by the key's raw bytes read
// as a little-endian number for concatenations — wrapping them 2 (addresses), 5 (ports,
// protocols, marks) or 1 (concatenations) to a line. Write reproduces all of that.
package nft

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// DefaultVersion is the nft version whose `list ruleset` output Write reproduces.
const DefaultVersion = "1.0.6"

// WriteOptions select the output.
type WriteOptions struct {
	// Version is the nft version to imitate; empty means DefaultVersion.
	Version string
}

// Write prints rs as `nft list ruleset` does.
func Write(w io.Writer, rs *nftables.Ruleset, opts WriteOptions) error {
	bw := bufio.NewWriter(w)
	for _, t := range rs.Tables {
		writeTable(bw, t)
	}
	return bw.Flush()
}

// WriteTable prints one table as `nft list table FAMILY NAME` does.
func WriteTable(w io.Writer, t *nftables.Table) error {
	bw := bufio.NewWriter(w)
	writeTable(bw, t)
	return bw.Flush()
}

func writeTable(w *bufio.Writer, t *nftables.Table) {
	fmt.Fprintf(w, "table %s %s {\n", t.Family, t.Name)
	if len(t.Flags) > 0 {
		fmt.Fprintf(w, "\tflags %s\n", strings.Join(t.Flags, ","))
	}
	if t.Comment != "" {
		fmt.Fprintf(w, "\tcomment %q\n", t.Comment)
	}
	first := true
	sep := func() {
		if !first {
			w.WriteString("\n")
		}
		first = false
	}
	for _, s := range t.Sets {
		sep()
		writeSet(w, t.Family, s)
	}
	for _, c := range t.Chains {
		sep()
		writeChain(w, t.Family, c)
	}
	w.WriteString("}\n")
}

func writeSet(w *bufio.Writer, fam nftables.Family, s *nftables.Set) {
	kind := "set"
	if s.IsMap() {
		kind = "map"
	}
	fmt.Fprintf(w, "\t%s %s {\n", kind, s.Name)
	typ := strings.Join(s.KeyType, " . ")
	if s.IsMap() {
		typ += " : " + s.DataType
	}
	fmt.Fprintf(w, "\t\ttype %s\n", typ)
	if s.Policy != "" && s.Policy != "performance" {
		fmt.Fprintf(w, "\t\tpolicy %s\n", s.Policy)
	}
	size := s.Size
	if size == 0 && hasFlag(s.Flags, "dynamic") {
		// The kernel gives a dynamic set without an explicit size the default 65535.
		size = 65535
	}
	if size > 0 {
		fmt.Fprintf(w, "\t\tsize %d\n", size)
	}
	if len(s.Flags) > 0 {
		fmt.Fprintf(w, "\t\tflags %s\n", strings.Join(canonicalFlags(s.Flags), ","))
	}
	if s.Timeout != "" {
		fmt.Fprintf(w, "\t\ttimeout %s\n", FormatDuration(s.Timeout))
	}
	if s.Comment != "" {
		fmt.Fprintf(w, "\t\tcomment %q\n", s.Comment)
	}
	if len(s.Elements) > 0 {
		elems := SortElements(s)
		w.WriteString("\t\telements = { ")
		perLine := elementsPerLine(s)
		count := 0
		for i, e := range elems {
			if i > 0 {
				if perLine > 0 && count < perLine {
					w.WriteString(", ")
				} else {
					w.WriteString(",\n\t\t\t     ")
					count = 0
				}
			}
			w.WriteString(elementString(e))
			count++
		}
		w.WriteString(" }\n")
	}
	w.WriteString("\t}\n")
}

// canonicalFlags orders set flags as nft prints them.
func canonicalFlags(flags []string) []string {
	// Observed with nft 1.0.6: "interval", "dynamic,timeout".
	order := []string{"constant", "interval", "dynamic", "timeout", "eval"}
	var out []string
	for _, o := range order {
		if hasFlag(flags, o) {
			out = append(out, o)
		}
	}
	for _, f := range flags {
		known := false
		for _, o := range order {
			if f == o {
				known = true
			}
		}
		if !known {
			out = append(out, f)
		}
	}
	return out
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// elementsPerLine is nft's calculate_delim: how many elements go on one line of a named
// set (0 means one per line).
func elementsPerLine(s *nftables.Set) int {
	if len(s.KeyType) != 1 {
		return 0
	}
	switch s.KeyType[0] {
	case "ipv4_addr", "ipv6_addr", "ct_state", "ct_status", "pkttype":
		return 2
	case "inet_proto", "inet_service", "mark", "integer", "nf_proto", "ifindex", "classid", "uid", "gid", "arp_op", "tcp_flag", "ct_dir":
		return 5
	}
	return 0
}

func elementString(e *nftables.Element) string {
	var b strings.Builder
	b.WriteString(strings.Join(e.Key, " . "))
	if e.Timeout != "" {
		b.WriteString(" timeout " + FormatDuration(e.Timeout))
	}
	if e.Comment != "" {
		b.WriteString(" comment " + strconv.Quote(e.Comment))
	}
	if len(e.Value) > 0 {
		b.WriteString(" : " + strings.Join(e.Value, " . "))
	}
	return b.String()
}

// SortElements returns s's elements in the order nft lists them.
func SortElements(s *nftables.Set) []*nftables.Element {
	out := append([]*nftables.Element(nil), s.Elements...)
	if len(s.KeyType) == 1 {
		sort.SliceStable(out, func(i, j int) bool {
			return compareValue(s.KeyType[0], out[i].Key[0], out[j].Key[0]) < 0
		})
		return out
	}
	keys := make(map[*nftables.Element][]byte, len(out))
	for _, e := range out {
		keys[e] = concatBytes(s.KeyType, e.Key)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := keys[out[i]], keys[out[j]]
		// The concatenated key is compared as one little-endian number: last byte first.
		n := len(a)
		if len(b) > n {
			n = len(b)
		}
		for k := n - 1; k >= 0; k-- {
			var x, y byte
			if k < len(a) {
				x = a[k]
			}
			if k < len(b) {
				y = b[k]
			}
			if x != y {
				return x < y
			}
		}
		return false
	})
	return out
}

// compareValue orders two values of one data type as nft does (numerically in the type's
// byte order; prefixes and ranges by their first address).
func compareValue(typ, a, b string) int {
	ab, bb := valueBytes(typ, a), valueBytes(typ, b)
	if ab != nil && bb != nil {
		for i := 0; i < len(ab) && i < len(bb); i++ {
			if ab[i] != bb[i] {
				if ab[i] < bb[i] {
					return -1
				}
				return 1
			}
		}
		return len(ab) - len(bb)
	}
	return strings.Compare(a, b)
}

var protoNumbers = map[string]byte{"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "sctp": 132, "udplite": 136}

// valueBytes encodes one value in the type's big-endian comparison form, or nil.
func valueBytes(typ, v string) []byte {
	v = strings.Trim(v, `"`)
	switch typ {
	case "ipv4_addr", "ipv6_addr":
		s := v
		if i := strings.IndexAny(s, "/-"); i >= 0 {
			s = s[:i]
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil
		}
		return a.AsSlice()
	case "inet_proto":
		if n, ok := protoNumbers[v]; ok {
			return []byte{n}
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil
		}
		return []byte{byte(n)}
	case "inet_service":
		s := v
		if i := strings.Index(s, "-"); i > 0 {
			s = s[:i]
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil
		}
		return []byte{byte(n >> 8), byte(n)}
	case "mark", "integer":
		n, err := strconv.ParseUint(v, 0, 32)
		if err != nil {
			return nil
		}
		return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return nil
}

// concatBytes lays out a concatenated key as the kernel stores it: each field in network
// (or, for marks, host) byte order, padded to a 4-byte register boundary.
func concatBytes(types, key []string) []byte {
	var out []byte
	for i, typ := range types {
		var b []byte
		if i < len(key) {
			b = valueBytes(typ, key[i])
			if typ == "mark" || typ == "integer" {
				// host byte order (little-endian machines)
				b = []byte{b[3], b[2], b[1], b[0]}
			}
		}
		if b == nil {
			b = []byte(key[i])
		}
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		out = append(out, b...)
	}
	return out
}

// FormatDuration prints a timeout as nft does: "10800s" becomes "3h", "90s" "1m30s".
func FormatDuration(s string) string {
	secs, ok := parseSeconds(s)
	if !ok {
		return s
	}
	if secs == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		n    int
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if secs >= u.n {
			fmt.Fprintf(&b, "%d%s", secs/u.n, u.name)
			secs %= u.n
		}
	}
	return b.String()
}

func parseSeconds(s string) (int, bool) {
	total := 0
	num := 0
	seen := false
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			num = num*10 + int(c-'0')
			seen = true
		case c == 'd':
			total += num * 86400
			num = 0
		case c == 'h':
			total += num * 3600
			num = 0
		case c == 'm':
			total += num * 60
			num = 0
		case c == 's':
			total += num
			num = 0
		default:
			return 0, false
		}
	}
	total += num
	return total, seen
}

// stdPriorities are nft's named base chain priorities for the ip, ip6 and inet families,
// with the hooks each name may be used with (nil: every hook).
var stdPriorities = []struct {
	name  string
	value int
	hooks []nftables.Hook
}{
	{"raw", -300, nil},
	{"mangle", -150, nil},
	{"dstnat", -100, []nftables.Hook{nftables.HookPrerouting}},
	{"filter", 0, nil},
	{"security", 50, nil},
	{"srcnat", 100, []nftables.Hook{nftables.HookPostrouting}},
}

// FormatPriority prints a base chain priority as nft does: a standard name, a name with
// an offset of at most 10, or the number.
func FormatPriority(fam nftables.Family, hook nftables.Hook, prio int) string {
	if fam == nftables.FamilyIP || fam == nftables.FamilyIP6 || fam == nftables.FamilyInet {
		for _, sp := range stdPriorities {
			if sp.hooks != nil {
				ok := false
				for _, h := range sp.hooks {
					if h == hook {
						ok = true
					}
				}
				if !ok {
					continue
				}
			}
			off := prio - sp.value
			switch {
			case off == 0:
				return sp.name
			case off > 0 && off <= 10:
				return fmt.Sprintf("%s + %d", sp.name, off)
			case off < 0 && off >= -10:
				return fmt.Sprintf("%s - %d", sp.name, -off)
			}
		}
	}
	return strconv.Itoa(prio)
}

func writeChain(w *bufio.Writer, fam nftables.Family, c *nftables.Chain) {
	fmt.Fprintf(w, "\tchain %s {\n", c.Name)
	if c.Comment != "" {
		fmt.Fprintf(w, "\t\tcomment %q\n", c.Comment)
	}
	if c.IsBase() {
		pol := c.Policy
		if pol == "" {
			pol = "accept"
		}
		dev := ""
		if c.Device != "" {
			dev = " device " + strconv.Quote(c.Device)
		}
		fmt.Fprintf(w, "\t\ttype %s hook %s%s priority %s; policy %s;\n", c.Type, c.Hook, dev, FormatPriority(fam, c.Hook, c.Priority), pol)
	}
	for _, r := range c.Rules {
		w.WriteString("\t\t")
		w.WriteString(ListRuleText(r.Text))
		if r.Comment != "" {
			w.WriteString(" comment " + strconv.Quote(r.Comment))
		}
		w.WriteString("\n")
	}
	w.WriteString("\t}\n")
}
