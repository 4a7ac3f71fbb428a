// Package netfilter models the iptables side of Linux netfilter: tables, chains, rules,
// matches and targets, as iptables-save prints them, plus an evaluator.
package netfilter

// Ruleset is every table of one address family (what `iptables-save` prints).
type Ruleset struct {
	Family Family
}

// Family is the address family of a ruleset.
type Family string

// Families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)
