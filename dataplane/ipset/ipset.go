// Package ipset models Linux ipsets (hash:ip, hash:ip,port, bitmap:port, list:set, ...)
// with their match semantics.
package ipset

// Sets is every ipset of one namespace (what `ipset save` prints).
type Sets struct{}
