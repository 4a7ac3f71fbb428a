// Package kernel drives a real Linux kernel: it creates network namespaces the way the CNI
// plugins do (containernetworking/plugins pkg/ns: closures run on a locked OS thread that is
// discarded if the namespace cannot be restored), applies a dataplane.Node to a namespace
// and reads one back.
//
// Links, addresses, routes, rules, neighbours and fdb entries go through
// github.com/vishvananda/netlink (v1.3.1) with a handle bound to the namespace
// (netlink.NewHandleAt); sysctls through /proc/sys inside the namespace; iptables through
// the real iptables-restore / iptables-save (iptables 1.8.9, nf_tables backend, as on
// Debian 12); ipsets through `ipset restore` / `ipset save`; IPVS through
// github.com/moby/ipvs (v1.1.0); nftables through sigs.k8s.io/knftables (v0.0.22), which
// execs `nft` inside the namespace.
//
// The package is Linux only; on other systems every entry point returns ErrNotSupported.
// It is, with lab and the snapshot collector, the only part of knet that touches the OS.
package kernel

import "errors"

// ErrNotSupported is returned on systems other than Linux.
var ErrNotSupported = errors.New("kernel: not supported on this operating system")
