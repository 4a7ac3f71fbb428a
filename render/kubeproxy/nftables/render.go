package nftables

import (
	"context"

	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/cluster"
	dpnft "github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/format/nft"
)

func knftFamily(f Family) knftables.Family {
	if f == IPv6 {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}

// RenderRuleset returns the node's nftables state after kube-proxy's first full sync, in
// the model (tables, chains and sets in the order nft lists them, rules parsed).
func RenderRuleset(objs cluster.Objects, opts Options) (*dpnft.Ruleset, error) {
	m := nft.NewModel(knftFamily(opts.Family), "kube-proxy")
	p, err := New(opts, m, nil)
	if err != nil {
		return nil, err
	}
	if err := p.Sync(context.Background(), objs); err != nil {
		return nil, err
	}
	// Rules are parsed into statements lazily, by the evaluator, when a packet reaches them.
	return m.Ruleset(), nil
}

// RenderTransaction returns the first full sync as kube-proxy's transaction text (the
// `add table|chain|set|map|rule|element` lines `nft -f` reads), in knftables dump order.
func RenderTransaction(objs cluster.Objects, opts Options) (string, error) {
	f := knftables.NewFake(knftFamily(opts.Family), "kube-proxy")
	p, err := New(opts, f, nil)
	if err != nil {
		return "", err
	}
	if err := p.Sync(context.Background(), objs); err != nil {
		return "", err
	}
	return f.Dump(), nil
}
