// Package iptablessave reads and writes the iptables-save / iptables-restore text format of
// iptables v1.8.9 (nf_tables backend), the version a stock Debian 12 node and most
// Kubernetes node images carry.
//
//   - [Parse] reads `iptables-save` output (or any restore-format dump) into a
//     netfilter.Ruleset, tolerating real-world dumps: what it does not understand is kept
//     verbatim (netfilter.Opaque) and reported as a [Diagnostic] with its line and column.
//   - [ParseRestore] reads `iptables-restore` input into a [Script] of commands, and
//     [Restore] applies such input to a ruleset exactly as `iptables-restore [--noflush]`
//     does, with the real tool's errors (missing chains, deleting a chain in use, ...).
//   - [Write] prints a ruleset as `iptables-save` prints it ([StyleSave]) or as restore input
//     ([StyleRestore]); [Normalize] answers "what does iptables-save show after kube-proxy's
//     iptables-restore".
//
// The kernel (package kernel, SaveAfterRestore) is the judge: the tests compare Normalize
// with the real iptables-restore + iptables-save in a throwaway network namespace.
package iptablessave
