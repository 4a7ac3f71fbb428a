package netfilter

import (
	"errors"
	"fmt"
)

// Hook is a netfilter hook; the values are the names of the builtin chains attached to it.
type Hook string

// The five IPv4/IPv6 netfilter hooks, in the order a forwarded or local packet meets them.
const (
	Prerouting  Hook = "PREROUTING"
	Input       Hook = "INPUT"
	Forward     Hook = "FORWARD"
	Output      Hook = "OUTPUT"
	Postrouting Hook = "POSTROUTING"
)

// Hooks returns every hook in kernel enum order (NF_INET_PRE_ROUTING .. NF_INET_POST_ROUTING).
func Hooks() []Hook { return []Hook{Prerouting, Input, Forward, Output, Postrouting} }

// Kernel priorities of the iptables tables (include/uapi/linux/netfilter_ipv4.h, enum
// nf_ip_hook_priorities).
const (
	PriorityRaw      = -300
	PriorityMangle   = -150
	PriorityNATDst   = -100
	PriorityFilter   = 0
	PrioritySecurity = 50
	PriorityNATSrc   = 100
)

// hookTables lists, per hook, the tables registered there in priority order.
func hookTables(h Hook) []TableName {
	switch h {
	case Prerouting:
		return []TableName{Raw, Mangle, NAT}
	case Input:
		return []TableName{Mangle, Filter, Security, NAT}
	case Forward:
		return []TableName{Mangle, Filter, Security}
	case Output:
		return []TableName{Raw, Mangle, NAT, Filter, Security}
	case Postrouting:
		return []TableName{Mangle, NAT}
	}
	return nil
}

// HookTables returns the tables whose builtin chain h runs at hook h, in kernel priority
// order (lowest priority value first), e.g. PREROUTING: raw, mangle, nat.
func HookTables(h Hook) []TableName { return hookTables(h) }

// Priority returns the kernel priority of table t at hook h, and false if t has no chain
// at h. nat is -100 (DNAT) at PREROUTING and OUTPUT and 100 (SNAT) at INPUT and POSTROUTING.
func Priority(t TableName, h Hook) (int, bool) {
	found := false
	for _, x := range hookTables(h) {
		if x == t {
			found = true
		}
	}
	if !found {
		return 0, false
	}
	switch t {
	case Raw:
		return PriorityRaw, true
	case Mangle:
		return PriorityMangle, true
	case Filter:
		return PriorityFilter, true
	case Security:
		return PrioritySecurity, true
	case NAT:
		if h == Prerouting || h == Output {
			return PriorityNATDst, true
		}
		return PriorityNATSrc, true
	}
	return 0, false
}

// BuiltinChains returns the builtin chains of table t in the order iptables-save lists them
// (hook enum order).
func BuiltinChains(t TableName) []Hook {
	switch t {
	case Raw:
		return []Hook{Prerouting, Output}
	case Mangle:
		return []Hook{Prerouting, Input, Forward, Output, Postrouting}
	case NAT:
		return []Hook{Prerouting, Input, Output, Postrouting}
	case Filter, Security:
		return []Hook{Input, Forward, Output}
	}
	return nil
}

// IsBuiltinChain reports whether name is a builtin chain of table t.
func IsBuiltinChain(t TableName, name string) bool {
	for _, h := range BuiltinChains(t) {
		if string(h) == name {
			return true
		}
	}
	return false
}

// Errors returned by chain operations; test with errors.Is.
var (
	ErrNoChain         = errors.New("no chain/target/match by that name")
	ErrChainExists     = errors.New("chain already exists")
	ErrBuiltinChain    = errors.New("cannot delete built-in chain")
	ErrChainNotEmpty   = errors.New("directory not empty")
	ErrChainInUse      = errors.New("chain is in use")
	ErrIndexOutOfRange = errors.New("index of insertion too big")
)

// ChainError is an error about one chain.
type ChainError struct {
	Table TableName
	Chain string
	Err   error
}

func (e *ChainError) Error() string {
	if e.Table != "" {
		return fmt.Sprintf("table %s chain %s: %v", e.Table, e.Chain, e.Err)
	}
	return fmt.Sprintf("chain %s: %v", e.Chain, e.Err)
}

func (e *ChainError) Unwrap() error { return e.Err }
