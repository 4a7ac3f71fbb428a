package netfilter

import (
	"net/netip"
	"strings"
)

// Rule is one iptables rule: the basic matches, the ordered match extensions and the target.
// The zero value of each basic match means "any".
type Rule struct {
	// Src and Dst are `[!] -s PREFIX` and `[!] -d PREFIX`.
	Src, Dst AddrMatch
	// In and Out are `[!] -i IFACE` and `[!] -o IFACE` (a trailing `+` is a prefix wildcard).
	In, Out IfaceMatch
	// Proto is `[!] -p PROTO`.
	Proto ProtoMatch
	// Fragment is `[!] -f` (IPv4 only).
	Fragment Fragment
	// Matches are the `-m MODULE OPTIONS` extensions in rule order.
	Matches []Match
	// Target is the `-j`/`-g` target; nil for a rule without one (it only counts).
	Target Target

	// Counters are the rule's `[packets:bytes]` (or `-c p b`).
	Counters Counters
	// Line is the 1-based line of the source text the rule came from (0 when built in Go).
	Line int
	// Text is the rule as written in the source after `-A CHAIN ` (without counters), kept
	// so that iptables-restore input can be printed back exactly as written; empty when the
	// rule was built in Go, and cleared by anything that rewrites the rule.
	Text string
}

// AddrMatch is `[!] -s|-d PREFIX`. An invalid (zero) Prefix matches any address.
type AddrMatch struct {
	Prefix netip.Prefix
	Invert bool
}

// IsSet reports whether the match restricts anything.
func (m AddrMatch) IsSet() bool { return m.Prefix.IsValid() }

// Matches reports whether addr satisfies the match.
func (m AddrMatch) Matches(addr netip.Addr) bool {
	if !m.Prefix.IsValid() {
		return true
	}
	return m.Prefix.Contains(addr) != m.Invert
}

// IfaceMatch is `[!] -i|-o NAME`; a Name ending in `+` matches every interface with that
// prefix, and an empty Name matches any interface.
type IfaceMatch struct {
	Name   string
	Invert bool
}

// IsSet reports whether the match restricts anything.
func (m IfaceMatch) IsSet() bool { return m.Name != "" }

// Matches reports whether the interface ifname satisfies the match.
func (m IfaceMatch) Matches(ifname string) bool {
	if m.Name == "" {
		return true
	}
	var ok bool
	if p, wild := strings.CutSuffix(m.Name, "+"); wild {
		ok = strings.HasPrefix(ifname, p)
	} else {
		ok = ifname == m.Name
	}
	return ok != m.Invert
}

// ProtoMatch is `[!] -p PROTO`. Name is the protocol as iptables-save prints it (see
// [ProtoName]: "tcp", "udp", "ipv6-icmp", "gre", ... or a decimal number); empty means any.
type ProtoMatch struct {
	Name   string
	Invert bool
}

// IsSet reports whether the match restricts anything.
func (m ProtoMatch) IsSet() bool { return m.Name != "" && m.Name != "all" }

// Number returns the IP protocol number of Name and whether it is known.
func (m ProtoMatch) Number() (uint8, bool) { return ProtoNumber(m.Name) }

// chainProtos is iptables' xtables_chain_protos table (libxtables/xtables.c), in its order.
var chainProtos = [...]struct {
	name string
	num  uint8
}{
	{"tcp", 6}, {"sctp", 132}, {"udp", 17}, {"udplite", 136}, {"icmp", 1}, {"icmpv6", 58},
	{"ipv6-icmp", 58}, {"esp", 50}, {"ah", 51}, {"ipv6-mh", 135}, {"mh", 135}, {"all", 0},
}

// etcProtocols is Debian netbase's /etc/protocols (names below 256), which iptables-save
// consults first through getprotobynumber(3).
var etcProtocols = [...]struct {
	name string
	num  uint8
}{
	{"ip", 0},
	{"icmp", 1},
	{"igmp", 2},
	{"ggp", 3},
	{"ipencap", 4},
	{"st", 5},
	{"tcp", 6},
	{"egp", 8},
	{"igp", 9},
	{"pup", 12},
	{"udp", 17},
	{"hmp", 20},
	{"xns-idp", 22},
	{"rdp", 27},
	{"iso-tp4", 29},
	{"dccp", 33},
	{"xtp", 36},
	{"ddp", 37},
	{"idpr-cmtp", 38},
	{"ipv6", 41},
	{"ipv6-route", 43},
	{"ipv6-frag", 44},
	{"idrp", 45},
	{"rsvp", 46},
	{"gre", 47},
	{"esp", 50},
	{"ah", 51},
	{"skip", 57},
	{"ipv6-icmp", 58},
	{"ipv6-nonxt", 59},
	{"ipv6-opts", 60},
	{"rspf", 73},
	{"vmtp", 81},
	{"eigrp", 88},
	{"ospf", 89},
	{"ax.25", 93},
	{"ipip", 94},
	{"etherip", 97},
	{"encap", 98},
	{"pim", 103},
	{"ipcomp", 108},
	{"vrrp", 112},
	{"l2tp", 115},
	{"isis", 124},
	{"sctp", 132},
	{"fc", 133},
	{"mobility-header", 135},
	{"udplite", 136},
	{"mpls-in-ip", 137},
	{"manet", 138},
	{"hip", 139},
	{"shim6", 140},
	{"wesp", 141},
	{"rohc", 142},
	{"ethernet", 143},
}

// ProtoNumber returns the protocol number for an iptables `-p` token: a name known to
// /etc/protocols or to iptables, or a decimal number.
func ProtoNumber(name string) (uint8, bool) {
	for _, p := range chainProtos {
		if p.name == name {
			return p.num, true
		}
	}
	for _, p := range etcProtocols {
		if p.name == name {
			return p.num, true
		}
	}
	n := 0
	if name == "" || len(name) > 3 {
		return 0, false
	}
	for _, c := range []byte(name) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 255 {
		return 0, false
	}
	return uint8(n), true
}

// ProtoName returns the name iptables v1.8.9 `iptables-save` prints for protocol number n:
// the /etc/protocols name (Debian netbase), else iptables' own name, else the number.
// Verified against the real tool: 47 prints "gre", 58 prints "ipv6-icmp".
func ProtoName(n uint8) string {
	for _, p := range etcProtocols {
		if p.num == n {
			return p.name
		}
	}
	for _, p := range chainProtos {
		if p.num == n {
			return p.name
		}
	}
	return itoa(uint64(n))
}

// Fragment is the `-f` match on non-first IPv4 fragments.
type Fragment uint8

// Fragment values.
const (
	FragmentAny     Fragment = iota // no -f
	FragmentOnly                    // -f
	FragmentNotOnly                 // ! -f
)

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
