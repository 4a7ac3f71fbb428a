//go:build linux

package kernel

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/format/nft"
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

// ApplyNFT programs rs into ns with the real nft, in one atomic transaction.
//
// Equivalent to: `ip netns exec NS nft -f -` of the ruleset's `add` commands.
func ApplyNFT(ctx context.Context, ns *NS, rs *nftables.Ruleset) error {
	if rs == nil || len(rs.Tables) == 0 {
		return nil
	}
	var b strings.Builder
	if err := nft.WriteTransaction(&b, rs); err != nil {
		return err
	}
	return NFTApply(ctx, ns, b.String())
}

// ReadNFT reads ns's nftables ruleset back into the model, from the real
// `nft -j list ruleset`.
func ReadNFT(ctx context.Context, ns *NS) (*nftables.Ruleset, error) {
	out, err := ns.Run(ctx, nil, "nft", "-j", "list", "ruleset")
	if err != nil {
		return nil, err
	}
	return nft.ParseJSON(strings.NewReader(string(out)), "nft -j list ruleset")
}
