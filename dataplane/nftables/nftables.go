// Package nftables models nftables tables, chains, sets, maps and rules, with an evaluator.
package nftables

// Ruleset is every nftables table of one namespace (what `nft list ruleset` prints).
type Ruleset struct{}
