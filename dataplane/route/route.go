// Package route models the routing half of a Linux network namespace: links, addresses,
// routes in several tables, policy rules, neighbours and bridge fdb entries, with a FIB
// lookup that does what the kernel does.
package route

// Stack is the links, addresses, routes, rules, neighbours and fdb of one namespace.
type Stack struct{}
