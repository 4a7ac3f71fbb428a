//go:build linux

package kernel

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/knet-dev/knet/dataplane/netfilter"
)

// iptablesTools returns the restore and save commands for a family.
func iptablesTools(family netfilter.Family) (restore, save string, err error) {
	switch family {
	case netfilter.IPv4, "":
		return "iptables-restore", "iptables-save", nil
	case netfilter.IPv6:
		return "ip6tables-restore", "ip6tables-save", nil
	}
	return "", "", fmt.Errorf("iptables: unknown family %q", family)
}

// SaveAfterRestore runs the real `iptables-restore --noflush` (ip6tables-restore for IPv6)
// on input inside a fresh, throwaway network namespace, then returns what the real
// `iptables-save` prints there. The host namespace is never touched. Before the restore it
// creates the nfacct counters the input names (`-m nfacct --nfacct-name X`), as kube-proxy
// does before its first sync.
//
// Equivalent to: `unshare --net sh -c 'iptables-restore --noflush <input; iptables-save'`.
func SaveAfterRestore(ctx context.Context, input []byte, family netfilter.Family) ([]byte, error) {
	return SaveAfterRestores(ctx, family, input)
}

// SaveAfterRestores is SaveAfterRestore for a sequence of restore inputs applied in order to
// the same namespace (e.g. kube-proxy's successive partial syncs).
func SaveAfterRestores(ctx context.Context, family netfilter.Family, inputs ...[]byte) ([]byte, error) {
	restore, save, err := iptablesTools(family)
	if err != nil {
		return nil, err
	}
	ns, err := NewNS("")
	if err != nil {
		return nil, fmt.Errorf("iptables: create namespace: %w", err)
	}
	defer ns.Close()
	if names := nfacctNames(inputs); len(names) > 0 {
		if err := ns.Do(func() error {
			for _, n := range names {
				if err := createNFAcct(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	for i, in := range inputs {
		if _, err := ns.Run(ctx, in, restore, "--noflush"); err != nil {
			return nil, fmt.Errorf("iptables: restore input %d: %w", i+1, err)
		}
	}
	out, err := ns.Run(ctx, nil, save)
	if err != nil {
		return nil, fmt.Errorf("iptables: save: %w", err)
	}
	return out, nil
}

// RestoreTest runs `iptables-restore --test` on input in a throwaway namespace: the real
// tool parses and checks the input without committing it.
//
// Equivalent to: `unshare --net iptables-restore --test <input`.
func RestoreTest(ctx context.Context, input []byte, family netfilter.Family) error {
	restore, _, err := iptablesTools(family)
	if err != nil {
		return err
	}
	ns, err := NewNS("")
	if err != nil {
		return fmt.Errorf("iptables: create namespace: %w", err)
	}
	defer ns.Close()
	if names := nfacctNames([][]byte{input}); len(names) > 0 {
		if err := ns.Do(func() error {
			for _, n := range names {
				if err := createNFAcct(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if _, err := ns.Run(ctx, input, restore, "--test", "--noflush"); err != nil {
		return fmt.Errorf("iptables: restore --test: %w", err)
	}
	return nil
}

// nfacctNameRE finds the nfacct objects an input refers to.
var nfacctNameRE = regexp.MustCompile(`--nfacct-name\s+"?([^"\s]+)`)

func nfacctNames(inputs [][]byte) []string {
	var names []string
	for _, in := range inputs {
		if !bytes.Contains(in, []byte("--nfacct-name")) {
			continue
		}
		for _, m := range nfacctNameRE.FindAllSubmatch(in, -1) {
			names = append(names, string(m[1]))
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// nfnetlink_acct message constants (include/uapi/linux/netfilter/nfnetlink_acct.h).
const (
	nfnlSubsysAcct = 7 // NFNL_SUBSYS_ACCT
	nfnlMsgAcctNew = 0 // NFNL_MSG_ACCT_NEW
	nfacctAttrName = 1 // NFACCT_NAME
)

// createNFAcct creates the extended accounting object name in the current thread's
// namespace; an existing object is not an error.
//
// Equivalent to: `nfacct add NAME`.
func createNFAcct(name string) error {
	req := nl.NewNetlinkRequest(nfnlSubsysAcct<<8|nfnlMsgAcctNew, unix.NLM_F_CREATE|unix.NLM_F_ACK)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: 0})
	req.AddData(nl.NewRtAttr(nfacctAttrName, nl.ZeroTerminated(name)))
	if _, err := req.Execute(unix.NETLINK_NETFILTER, 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("nfacct add %s: %w", name, err)
	}
	return nil
}
