package netfilter

import "net/netip"

// Match is one `-m MODULE OPTIONS` match extension. The concrete types are the pointers in
// this file; Opaque keeps modules (or option combinations) the model does not type, verbatim.
type Match interface {
	// Module is the `-m` name.
	Module() string
	isMatch()
}

// PortRange is an inclusive port range; Lo == Hi is a single port (`80` or `80:90`).
type PortRange struct{ Lo, Hi uint16 }

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

// PortMatch is an optional, negatable `--sport`/`--dport` option.
type PortMatch struct {
	Set    bool
	Invert bool
	Range  PortRange
}

// Matches reports whether port p satisfies the option (true when unset).
func (m PortMatch) Matches(p uint16) bool { return !m.Set || m.Range.Contains(p) != m.Invert }

// TCP flag bits as libxt_tcp names them.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
)

// TCP is `-m tcp`: `[!] --sport`, `[!] --dport`, `[!] --tcp-option N`, `[!] --tcp-flags MASK COMP`
// (`--syn` is `--tcp-flags FIN,SYN,RST,ACK SYN`).
type TCP struct {
	SPort, DPort PortMatch
	// Option is `--tcp-option N` when OptionSet.
	OptionSet, OptionInvert bool
	Option                  uint8
	// FlagsMask/FlagsComp are `--tcp-flags MASK COMP` when FlagsSet.
	FlagsSet, FlagsInvert bool
	FlagsMask, FlagsComp  uint8
}

// UDP is `-m udp`: `[!] --sport`, `[!] --dport`.
type UDP struct{ SPort, DPort PortMatch }

// SCTP is `-m sctp`: `[!] --sport`, `[!] --dport`; chunk-type options are kept in Chunks
// verbatim (`--chunk-types ...`).
type SCTP struct {
	SPort, DPort PortMatch
	Chunks       []string
}

// MultiportDir says which ports `-m multiport` compares.
type MultiportDir string

// Multiport directions; the values are the option names.
const (
	MultiportSource MultiportDir = "--sports"
	MultiportDest   MultiportDir = "--dports"
	MultiportBoth   MultiportDir = "--ports"
)

// Multiport is `-m multiport [!] --sports|--dports|--ports P[,P:Q...]`.
type Multiport struct {
	Dir    MultiportDir
	Invert bool
	Ports  []PortRange
}

// Comment is `-m comment --comment TEXT`.
type Comment struct{ Text string }

// Mark is `-m mark [!] --mark VALUE[/MASK]` (Mask 0xffffffff when not given).
type Mark struct {
	Value, Mask uint32
	Invert      bool
}

// Connmark is `-m connmark [!] --mark VALUE[/MASK]`.
type Connmark struct {
	Value, Mask uint32
	Invert      bool
}

// CTState is a conntrack state bit set (`--ctstate` / `--state`).
type CTState uint16

// Conntrack states, in the order libxt_conntrack prints them.
const (
	CTInvalid CTState = 1 << iota
	CTNew
	CTRelated
	CTEstablished
	CTUntracked
	CTSNAT
	CTDNAT
)

// CTStateNames are the state tokens in print order.
var ctStateNames = [...]struct {
	s    CTState
	name string
}{
	{CTInvalid, "INVALID"}, {CTNew, "NEW"}, {CTRelated, "RELATED"}, {CTEstablished, "ESTABLISHED"},
	{CTUntracked, "UNTRACKED"}, {CTSNAT, "SNAT"}, {CTDNAT, "DNAT"},
}

// ParseCTState parses one state token.
func ParseCTState(tok string) (CTState, bool) {
	for _, x := range ctStateNames {
		if x.name == tok {
			return x.s, true
		}
	}
	return 0, false
}

// Names returns the state tokens set in s, in print order.
func (s CTState) Names() []string {
	var out []string
	for _, x := range ctStateNames {
		if s&x.s != 0 {
			out = append(out, x.name)
		}
	}
	return out
}

// CTStatus is a conntrack status bit set (`--ctstatus`).
type CTStatus uint8

// Conntrack status bits, in print order.
const (
	CTStatusExpected CTStatus = 1 << iota
	CTStatusSeenReply
	CTStatusAssured
	CTStatusConfirmed
)

var ctStatusNames = [...]struct {
	s    CTStatus
	name string
}{
	{CTStatusExpected, "EXPECTED"}, {CTStatusSeenReply, "SEEN_REPLY"}, {CTStatusAssured, "ASSURED"},
	{CTStatusConfirmed, "CONFIRMED"},
}

// ParseCTStatus parses one status token ("NONE" is the empty set).
func ParseCTStatus(tok string) (CTStatus, bool) {
	if tok == "NONE" {
		return 0, true
	}
	for _, x := range ctStatusNames {
		if x.name == tok {
			return x.s, true
		}
	}
	return 0, false
}

// Names returns the status tokens set in s, in print order.
func (s CTStatus) Names() []string {
	var out []string
	for _, x := range ctStatusNames {
		if s&x.s != 0 {
			out = append(out, x.name)
		}
	}
	if len(out) == 0 {
		out = append(out, "NONE")
	}
	return out
}

// CTAddr is a negatable conntrack address option (`--ctorigsrc` ...).
type CTAddr struct {
	Set    bool
	Invert bool
	Prefix netip.Prefix
}

// Conntrack is `-m conntrack`. Each option is negatable.
type Conntrack struct {
	StateSet, StateInvert   bool
	State                   CTState
	ProtoSet, ProtoInvert   bool
	Proto                   uint8
	OrigSrc, OrigDst        CTAddr
	ReplSrc, ReplDst        CTAddr
	OrigSrcPort             PortMatch
	OrigDstPort             PortMatch
	ReplSrcPort             PortMatch
	ReplDstPort             PortMatch
	StatusSet, StatusInvert bool
	Status                  CTStatus
	ExpireSet, ExpireInvert bool
	ExpireMin, ExpireMax    uint32
	// Dir is "ORIGINAL" or "REPLY" for `--ctdir`, empty when absent.
	Dir string
}

// State is the legacy `-m state [!] --state LIST`.
type State struct {
	States CTState
	Invert bool
}

// StatisticMode is `--mode`.
type StatisticMode string

// Statistic modes.
const (
	StatisticRandom StatisticMode = "random"
	StatisticNth    StatisticMode = "nth"
)

// Statistic is `-m statistic --mode random [!] --probability P` or
// `-m statistic --mode nth [!] --every N [--packet P]`.
type Statistic struct {
	Mode   StatisticMode
	Invert bool
	// Probability is the kernel's u32: lround(0x80000000 * p); a packet matches if
	// (prandom_u32() & 0x7FFFFFFF) < Probability.
	Probability uint32
	// Every and Packet are the nth-mode values as written (Every >= 1).
	Every, Packet uint32
}

// ProbabilityFloat returns the probability as iptables-save prints it (before %.11f).
func (s *Statistic) ProbabilityFloat() float64 { return float64(s.Probability) / 0x80000000 }

// RecentCommand is the `-m recent` command.
type RecentCommand string

// Recent commands; the values are the option names.
const (
	RecentSet    RecentCommand = "--set"
	RecentCheck  RecentCommand = "--rcheck"
	RecentUpdate RecentCommand = "--update"
	RecentRemove RecentCommand = "--remove"
)

// Recent is `-m recent`: `[!] --set|--rcheck|--update|--remove [--seconds N] [--reap]
// [--hitcount N] [--rttl] --name NAME --mask MASK --rsource|--rdest`.
type Recent struct {
	Command  RecentCommand
	Invert   bool
	Seconds  uint32
	Reap     bool
	Hitcount uint32
	RTTL     bool
	// Name defaults to "DEFAULT".
	Name string
	// Mask defaults to all-ones of the family.
	Mask netip.Addr
	// Dest is --rdest; false is --rsource (the default).
	Dest bool
}

// AddrType is an address type bit set (`-m addrtype`), as in the kernel's XT_ADDRTYPE_*.
type AddrType uint16

// Address types, in print order.
const (
	AddrUnspec AddrType = 1 << iota
	AddrUnicast
	AddrLocal
	AddrBroadcast
	AddrAnycast
	AddrMulticast
	AddrBlackhole
	AddrUnreachable
	AddrProhibit
	AddrThrow
	AddrNAT
	AddrXResolve
)

var addrTypeNames = [...]string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
	"BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}

// ParseAddrType parses one address-type token.
func ParseAddrType(tok string) (AddrType, bool) {
	for i, n := range addrTypeNames {
		if n == tok {
			return 1 << i, true
		}
	}
	return 0, false
}

// Names returns the type tokens set in t, in print order.
func (t AddrType) Names() []string {
	var out []string
	for i, n := range addrTypeNames {
		if t&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// AddrTypeMatch is `-m addrtype [!] --src-type T [!] --dst-type T [--limit-iface-in|out]`.
type AddrTypeMatch struct {
	SrcType, DstType            AddrType
	SrcInvert, DstInvert        bool
	LimitIfaceIn, LimitIfaceOut bool
}

// SetMatch is `-m set [!] --match-set NAME src|dst[,...]` with its flags.
type SetMatch struct {
	Name   string
	Invert bool
	// Dirs are the per-dimension directions, "src" or "dst".
	Dirs []string
	// ReturnNomatch is --return-nomatch; the counter options are kept as written.
	ReturnNomatch      bool
	NoUpdateCounters   bool
	NoUpdateSubcounter bool
	// Extra keeps the counter comparison options (`--packets-gt N` ...) verbatim.
	Extra []string
}

// Physdev is `-m physdev` (bridge port matching); every option is negatable.
type Physdev struct {
	In, Out                    IfaceMatch
	IsIn, IsOut, IsBridged     bool
	IsInInv, IsOutInv, IsBrInv bool
}

// IPRange is `-m iprange [!] --src-range A-B [!] --dst-range A-B`; zero Addrs mean unset.
type IPRange struct {
	SrcLo, SrcHi, DstLo, DstHi netip.Addr
	SrcInvert, DstInvert       bool
}

// Limit is `-m limit --limit RATE --limit-burst N`. Avg is the kernel's period in
// 1/10000 s per packet (XT_LIMIT_SCALE), e.g. 3/min = 200000; default 3/hour, burst 5.
type Limit struct {
	Avg   uint32
	Burst uint32
}

// NFAcct is `-m nfacct --nfacct-name NAME`.
type NFAcct struct{ Name string }

// Owner is `-m owner` (OUTPUT/POSTROUTING only).
type Owner struct {
	UIDSet, UIDInvert       bool
	UIDMin, UIDMax          uint32
	GIDSet, GIDInvert       bool
	GIDMin, GIDMax          uint32
	SocketExists, SocketInv bool
}

// ICMP is `-m icmp [!] --icmp-type T[/C]` or `-m icmp6 [!] --icmpv6-type T[/C]`; Any is
// the type "any".
type ICMP struct {
	V6               bool
	Invert           bool
	Any              bool
	Type             uint8
	CodeMin, CodeMax uint8
}

// MAC is `-m mac [!] --mac-source XX:XX:XX:XX:XX:XX`.
type MAC struct {
	Addr   [6]byte
	Invert bool
}

// Length is `-m length [!] --length MIN[:MAX]`.
type Length struct {
	Min, Max uint16
	Invert   bool
}

// Opaque is a match the model does not type (`string`, `hashlimit`, `bpf`, `u32`, `ipvs`,
// ...), or one whose options it could not read; Args are the words after `-m NAME` as
// written in the source (quotes and escapes kept), so they print back verbatim.
type Opaque struct {
	Name string
	Args []string
}

func (*TCP) Module() string           { return "tcp" }
func (*UDP) Module() string           { return "udp" }
func (*SCTP) Module() string          { return "sctp" }
func (*Multiport) Module() string     { return "multiport" }
func (*Comment) Module() string       { return "comment" }
func (*Mark) Module() string          { return "mark" }
func (*Connmark) Module() string      { return "connmark" }
func (*Conntrack) Module() string     { return "conntrack" }
func (*State) Module() string         { return "state" }
func (*Statistic) Module() string     { return "statistic" }
func (*Recent) Module() string        { return "recent" }
func (*AddrTypeMatch) Module() string { return "addrtype" }
func (*SetMatch) Module() string      { return "set" }
func (*Physdev) Module() string       { return "physdev" }
func (*IPRange) Module() string       { return "iprange" }
func (*Limit) Module() string         { return "limit" }
func (*NFAcct) Module() string        { return "nfacct" }
func (*Owner) Module() string         { return "owner" }
func (*MAC) Module() string           { return "mac" }
func (*Length) Module() string        { return "length" }

// Module returns the opaque module name.
func (m *Opaque) Module() string { return m.Name }

// Module returns "icmp" or "icmp6".
func (m *ICMP) Module() string {
	if m.V6 {
		return "icmp6"
	}
	return "icmp"
}

func (*TCP) isMatch()           {}
func (*UDP) isMatch()           {}
func (*SCTP) isMatch()          {}
func (*Multiport) isMatch()     {}
func (*Comment) isMatch()       {}
func (*Mark) isMatch()          {}
func (*Connmark) isMatch()      {}
func (*Conntrack) isMatch()     {}
func (*State) isMatch()         {}
func (*Statistic) isMatch()     {}
func (*Recent) isMatch()        {}
func (*AddrTypeMatch) isMatch() {}
func (*SetMatch) isMatch()      {}
func (*Physdev) isMatch()       {}
func (*IPRange) isMatch()       {}
func (*Limit) isMatch()         {}
func (*NFAcct) isMatch()        {}
func (*Owner) isMatch()         {}
func (*ICMP) isMatch()          {}
func (*MAC) isMatch()           {}
func (*Length) isMatch()        {}
func (*Opaque) isMatch()        {}
