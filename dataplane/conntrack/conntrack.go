// Package conntrack models the connection tracking table: original and reply tuples, NAT,
// state and timeouts, as `conntrack -L` prints them.
package conntrack

// Table is the conntrack table of one namespace.
type Table struct{}
