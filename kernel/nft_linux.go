//go:build linux

package kernel

import (
	"context"
	"fmt"
	"os/exec"
)

// NFTApply runs each nft transaction (the text `nft -f` reads, as knftables writes it) with
// the real `nft -f -` inside ns, in order, each atomically.
//
// Equivalent to: `ip netns exec NS nft -f - <tx` for every transaction.
func NFTApply(ctx context.Context, ns *NS, transactions ...string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("nft: %w", err)
	}
	for i, tx := range transactions {
		if tx == "" {
			continue
		}
		if _, err := ns.Run(ctx, []byte(tx), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("transaction %d: %w", i+1, err)
		}
	}
	return nil
}

// NFTListRuleset returns what the real `nft list ruleset` prints inside ns.
func NFTListRuleset(ctx context.Context, ns *NS) ([]byte, error) {
	return ns.Run(ctx, nil, "nft", "list", "ruleset")
}
