package netfilter

import "net/netip"

// Target is what `-j NAME ...` (or `-g CHAIN`) does. The concrete types are the pointers in
// this file; OpaqueTarget keeps targets the model does not type, verbatim.
type Target interface {
	// TargetName is the `-j` name: ACCEPT, DNAT, a chain name, ...
	TargetName() string
	isTarget()
}

// VerdictKind is a standard verdict.
type VerdictKind string

// Standard verdicts; the values are the `-j` tokens.
const (
	VerdictAccept VerdictKind = "ACCEPT"
	VerdictDrop   VerdictKind = "DROP"
	VerdictReturn VerdictKind = "RETURN"
	VerdictQueue  VerdictKind = "QUEUE"
)

// Verdict is `-j ACCEPT|DROP|RETURN|QUEUE`.
type Verdict struct{ Kind VerdictKind }

// Jump is `-j CHAIN` (Goto false) or `-g CHAIN` (Goto true) to a user chain of the same table.
type Jump struct {
	Chain string
	Goto  bool
}

// Reject is `-j REJECT --reject-with TYPE`; With defaults to icmp-port-unreachable
// (icmp6-port-unreachable for IPv6).
type Reject struct{ With string }

// NATRange is a NAT destination: an address range and a port range, each optional, as in
// `--to-destination 10.0.0.1-10.0.0.9:80-90`.
type NATRange struct {
	MinAddr, MaxAddr netip.Addr
	MinPort, MaxPort uint16
}

// HasAddr reports whether the range names addresses.
func (r NATRange) HasAddr() bool { return r.MinAddr.IsValid() }

// HasPorts reports whether the range names ports.
func (r NATRange) HasPorts() bool { return r.MinPort != 0 || r.MaxPort != 0 }

// DNAT is `-j DNAT --to-destination RANGE [--random] [--persistent]`.
type DNAT struct {
	To                 NATRange
	Random, Persistent bool
}

// SNAT is `-j SNAT --to-source RANGE [--random] [--random-fully] [--persistent]`.
type SNAT struct {
	To                              NATRange
	Random, RandomFully, Persistent bool
}

// Masquerade is `-j MASQUERADE [--to-ports P[-Q]] [--random] [--random-fully]`; zero
// ports mean no --to-ports.
type Masquerade struct {
	MinPort, MaxPort    uint16
	Random, RandomFully bool
}

// Redirect is `-j REDIRECT [--to-ports P[-Q]] [--random]`.
type Redirect struct {
	MinPort, MaxPort uint16
	Random           bool
}

// MarkTarget is `-j MARK`; every form (--set-mark, --or-mark, --and-mark, --xor-mark) is
// stored as the kernel keeps it, `--set-xmark Value/Mask`: mark = (mark &^ Mask) ^ Value.
type MarkTarget struct{ Value, Mask uint32 }

// ConnmarkMode is the CONNMARK operation.
type ConnmarkMode string

// CONNMARK modes; the values are the option names iptables-save prints.
const (
	ConnmarkSet     ConnmarkMode = "--set-xmark"
	ConnmarkSave    ConnmarkMode = "--save-mark"
	ConnmarkRestore ConnmarkMode = "--restore-mark"
)

// ConnmarkTarget is `-j CONNMARK`: `--set-xmark V/M` (ctmark = (ctmark &^ Mask) ^ Value),
// `--save-mark --nfmask N --ctmask C`, or `--restore-mark --nfmask N --ctmask C`.
type ConnmarkTarget struct {
	Mode           ConnmarkMode
	Value, Mask    uint32
	NfMask, CtMask uint32
}

// Log is `-j LOG [--log-prefix P] [--log-level L] [--log-tcp-sequence] ...`; Level defaults
// to 4 (warning). Flags keeps the boolean options in print order.
type Log struct {
	Prefix string
	Level  uint8
	Flags  []string
}

// NFLog is `-j NFLOG [--nflog-prefix P] [--nflog-group N] [--nflog-size N]
// [--nflog-threshold N]`.
type NFLog struct {
	Prefix    string
	Group     uint16
	Size      uint32
	SizeSet   bool
	Threshold uint16
}

// Notrack is `-j NOTRACK` (the raw table's untracking target).
type Notrack struct{}

// CT is `-j CT [--notrack] [--zone N] [--helper NAME] ...`; options other than --notrack,
// --zone and --helper are kept verbatim in Extra.
type CT struct {
	Notrack bool
	Zone    uint16
	Helper  string
	Extra   []string
}

// Trace is `-j TRACE`.
type Trace struct{}

// OpaqueTarget is a target the model does not type; Args are the words after `-j NAME` as
// written in the source (quotes kept).
type OpaqueTarget struct {
	Name string
	Args []string
}

func (v *Verdict) TargetName() string      { return string(v.Kind) }
func (j *Jump) TargetName() string         { return j.Chain }
func (*Reject) TargetName() string         { return "REJECT" }
func (*DNAT) TargetName() string           { return "DNAT" }
func (*SNAT) TargetName() string           { return "SNAT" }
func (*Masquerade) TargetName() string     { return "MASQUERADE" }
func (*Redirect) TargetName() string       { return "REDIRECT" }
func (*MarkTarget) TargetName() string     { return "MARK" }
func (*ConnmarkTarget) TargetName() string { return "CONNMARK" }
func (*Log) TargetName() string            { return "LOG" }
func (*NFLog) TargetName() string          { return "NFLOG" }
func (*Notrack) TargetName() string        { return "NOTRACK" }
func (*CT) TargetName() string             { return "CT" }
func (*Trace) TargetName() string          { return "TRACE" }
func (t *OpaqueTarget) TargetName() string { return t.Name }

func (*Verdict) isTarget()        {}
func (*Jump) isTarget()           {}
func (*Reject) isTarget()         {}
func (*DNAT) isTarget()           {}
func (*SNAT) isTarget()           {}
func (*Masquerade) isTarget()     {}
func (*Redirect) isTarget()       {}
func (*MarkTarget) isTarget()     {}
func (*ConnmarkTarget) isTarget() {}
func (*Log) isTarget()            {}
func (*NFLog) isTarget()          {}
func (*Notrack) isTarget()        {}
func (*CT) isTarget()             {}
func (*Trace) isTarget()          {}
func (*OpaqueTarget) isTarget()   {}

// Target names the kernel resolves as extensions rather than chains.
var targetExtensions = [...]string{"ACCEPT", "DROP", "RETURN", "QUEUE", "REJECT", "DNAT", "SNAT",
	"MASQUERADE", "REDIRECT", "MARK", "CONNMARK", "LOG", "NFLOG", "NOTRACK", "CT", "TRACE",
	"NFQUEUE", "TPROXY", "TCPMSS", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "SET", "AUDIT",
	"CHECKSUM", "CONNSECMARK", "SECMARK", "NETMAP", "IDLETIMER", "LED", "RATEEST", "SYNPROXY",
	"TEE", "ULOG", "CLUSTERIP", "ECN", "HMARK", "TCPOPTSTRIP"}

// IsTargetExtension reports whether `-j name` names a target extension (a verdict or an
// xtables target) rather than a user chain, for the names known to iptables v1.8.9.
func IsTargetExtension(name string) bool {
	for _, n := range targetExtensions {
		if n == name {
			return true
		}
	}
	return false
}
