package explain

import (
	"os"
	"strings"
	"testing"
)

func TestNFTExplainsKubeProxyRuleset(t *testing.T) {
	data, err := os.ReadFile("testdata/nft01.list-ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeNFT(data) {
		t.Fatal("nft list ruleset not detected")
	}
	recs, err := NFT("nft01", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != strings.Count(string(data), "\n") {
		t.Fatalf("%d records for %d lines", len(recs), strings.Count(string(data), "\n"))
	}
	want := map[string]struct {
		kind    Kind
		service string
		meaning string
	}{
		"\t\tmeta l4proto tcp dnat to 10.180.0.1:80":                    {KindKubeProxy, "ns1/svc1", "rewrites the destination"},
		"\tchain services {":                                            {KindKubeProxy, "", "dispatch"},
		"\tchain external-42NFTM6N-ns2/svc2/tcp/p80 {":                  {KindKubeProxy, "ns2/svc2", "external traffic"},
		"\t\tip saddr != 203.0.113.0/25 drop":                           {KindKubeProxy, "ns5/svc5", "loadBalancerSourceRanges"},
		"\t\telements = { tcp . 3001 comment \"ns2/svc2:p80\" : drop }": {KindKubeProxy, "ns2/svc2", "no (local) endpoints"},
	}
	found := 0
	for _, r := range recs {
		w, ok := want[r.Text]
		if !ok {
			if r.Kind == Unknown {
				t.Errorf("line %d not placed: %q", r.Line, r.Text)
			}
			continue
		}
		found++
		if r.Kind != w.kind || r.Refs.Service != w.service || !strings.Contains(r.Meaning, w.meaning) {
			t.Errorf("line %d %q: kind=%s service=%q meaning=%q; want %s %q containing %q", r.Line, r.Text, r.Kind, r.Refs.Service, r.Meaning, w.kind, w.service, w.meaning)
		}
	}
	if found != len(want) {
		t.Errorf("found %d of %d expected lines", found, len(want))
	}
}
