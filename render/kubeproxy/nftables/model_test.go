package nftables

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/format/nft"
)

// TestModelAgreesWithKnftablesFake: kube-proxy's repeated syncs applied to knet's model
// and to knftables' own Fake end in the same `nft list ruleset`, step after step, and the
// model refuses what the Fake refuses.
func TestModelAgreesWithKnftablesFake(t *testing.T) {
	ctx := context.Background()
	for _, file := range []string{"case01", "case04", "case05", "case07", "case08"} {
		t.Run(file, func(t *testing.T) {
			objs := loadObjects(t, "testdata/"+file+".objects.yaml")
			rec := nft.NewRecorder(knftables.IPv4Family, "kube-proxy")
			model := nft.NewModel(knftables.IPv4Family, "kube-proxy")
			pr, _ := New(fakeProxierOptions(IPv4), rec, nil)
			pm, _ := New(fakeProxierOptions(IPv4), model, nil)
			for step := 0; step < 3; step++ {
				if step == 1 && len(objs.EndpointSlices) > 0 {
					objs.EndpointSlices = objs.EndpointSlices[1:]
				}
				if step == 2 {
					pr.ForceFullSync()
					pm.ForceFullSync()
				}
				if err := pr.Sync(ctx, objs); err != nil {
					t.Fatal(err)
				}
				if err := pm.Sync(ctx, objs); err != nil {
					t.Fatal(err)
				}
				if a, b := pr.LastTransaction.NumOperations(), pm.LastTransaction.NumOperations(); a != b {
					t.Errorf("step %d: %d operations with the Fake, %d with the model", step, a, b)
				}
				rsF, err := rec.Ruleset()
				if err != nil {
					t.Fatal(err)
				}
				var a, b bytes.Buffer
				nft.Write(&a, rsF, nft.WriteOptions{})
				nft.Write(&b, model.Ruleset(), nft.WriteOptions{})
				if d := cmp.Diff(a.String(), b.String()); d != "" {
					t.Errorf("step %d: nft list ruleset differs (-fake +model):\n%s", step, d)
				}
			}
		})
	}
	// Both refuse a rule that jumps to a missing chain, and deleting a referenced chain.
	for _, text := range []string{
		"add rule ip kube-proxy services jump nowhere",
		"delete chain ip kube-proxy mark-for-masquerade",
	} {
		rec := nft.NewRecorder(knftables.IPv4Family, "kube-proxy")
		model := nft.NewModel(knftables.IPv4Family, "kube-proxy")
		for _, ifc := range []knftables.Interface{rec, model} {
			p, _ := New(fakeProxierOptions(IPv4), ifc, nil)
			if err := p.Sync(ctx, loadObjects(t, "testdata/case01.objects.yaml")); err != nil {
				t.Fatal(err)
			}
		}
		if err := model.Apply(text); err == nil {
			t.Errorf("model accepted %q", text)
		}
	}
}
