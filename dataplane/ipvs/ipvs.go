// Package ipvs models the Linux IP Virtual Server: virtual services, real servers, the
// connection table and every scheduler the kernel ships.
package ipvs

// State is the IPVS state of one namespace (what `ipvsadm -Ln` prints).
type State struct{}
