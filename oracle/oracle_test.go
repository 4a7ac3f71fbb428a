package oracle

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/oracle/canon"
)

func genOpts() GenOptions {
	return GenOptions{NoZeroOrForeignNodePortCIDRs: *knownFlag, OnlyVisibleSliceChanges: *knownFlag}
}

func dump(sc Scenario, sync int, files map[string][]byte) {
	dir := filepath.Join(*dumpFlag, fmt.Sprint(sc.Seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	if b, err := MarshalCase(Case{Description: fmt.Sprintf("random scenario seed %d", sc.Seed), Config: sc.Config, States: sc.States}); err == nil {
		files["scenario.yaml"] = b
	}
	for name, b := range files {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("sync%d.%s", sync, name)), b, 0o644)
	}
}

var (
	seedFlag  = flag.Uint64("seed", 0, "replay only this scenario seed")
	nFlag     = flag.Int("scenarios", 300, "number of random scenarios")
	syncsFlag = flag.Int("syncs", 4, "syncs per scenario (the first full, the rest partial)")
	knownFlag = flag.Bool("skip-known", false, "do not generate inputs of known, reported disagreements (to explore past them)")
	dumpFlag  = flag.String("dump", "", "write each sync's raw and canonical outputs of a failing scenario into this directory")
)

// TestRandomScenariosMatchKubeProxy runs random scenarios through upstream kube-proxy
// and knet and compares every sync's canonical restore input.
func TestRandomScenariosMatchKubeProxy(t *testing.T) {
	seeds := make([]uint64, 0, *nFlag)
	if *seedFlag != 0 {
		seeds = append(seeds, *seedFlag)
	} else {
		for i := 1; i <= *nFlag; i++ {
			seeds = append(seeds, uint64(i)*0x5851f42d4c957f2d)
		}
	}
	failed := 0
	seen := map[string]int{}
	for _, seed := range seeds {
		sc := NewScenario(seed, *syncsFlag, genOpts())
		if err := runScenario(sc, func(out []byte) { markFeatures(out, seen) }); err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("scenario -seed=%d: %v", seed, err)
			}
		}
	}
	if failed > 5 {
		t.Errorf("%d of %d scenarios disagree (first 5 shown)", failed, len(seeds))
	}
	if *seedFlag == 0 && *nFlag >= 100 {
		// The random inputs must reach every kind of rule kube-proxy writes.
		for _, f := range features {
			if seen[f.name] == 0 {
				t.Errorf("no scenario produced %s (%s)", f.name, f.re)
			}
		}
		if seen["no INVALID drop (tcp_be_liberal)"] == 0 {
			t.Errorf("no scenario ran without the INVALID drop rule (tcp_be_liberal)")
		}
	}
	t.Logf("%d scenarios x %d syncs; rule kinds reached (syncs): %v", len(seeds), *syncsFlag, seen)
}

// features are kinds of kube-proxy output the random scenarios must reach.
var features = []struct {
	name string
	re   *regexp.Regexp
}{
	{"firewall chain (loadBalancerSourceRanges)", regexp.MustCompile(`(?m)^:KUBE-FW-`)},
	{"allow-from-node LB IP source", regexp.MustCompile(`loadbalancer IP" -s (1\.2|5\.6|2001:db8:1:2)`)},
	{"session affinity", regexp.MustCompile(`-m recent --name \S+ --rcheck --seconds`)},
	{"probability", regexp.MustCompile(`--probability 0\.`)},
	{"no local endpoints DROP", regexp.MustCompile(`has no local endpoints" .* -j DROP`)},
	{"no endpoints REJECT", regexp.MustCompile(`has no endpoints" .* -j REJECT`)},
	{"local policy chain", regexp.MustCompile(`(?m)^:KUBE-SVL-`)},
	{"eTP Local pod short-circuit", regexp.MustCompile(`"pod traffic for `)},
	{"loadbalancer IP", regexp.MustCompile(`loadbalancer IP" -m`)},
	{"external IP", regexp.MustCompile(`external IP" -m`)},
	{"health check node port", regexp.MustCompile(`health check node port"`)},
	{"sctp", regexp.MustCompile(`-m sctp -p sctp`)},
	{"udp", regexp.MustCompile(`-m udp -p udp`)},
	{"stale chain deletion", regexp.MustCompile(`(?m)^-X KUBE-`)},
	{"localhost NodePorts firewall", regexp.MustCompile(`block incoming localnet connections`)},
	{"non-localhost NodePorts", regexp.MustCompile(`--dst-type LOCAL ! -d 127\.0\.0\.0/8 -j KUBE-NODEPORTS`)},
	{"nodePortAddresses", regexp.MustCompile(`this chain" -d \S+ -j KUBE-NODEPORTS`)},
	{"IPv6", regexp.MustCompile(`--to-destination \[fd00:10::`)},
	{"large cluster mode", regexp.MustCompile(`(?m)^-A KUBE-SEP-\S+ -s `)},
	{"masquerade-all", regexp.MustCompile(`cluster IP" -m \S+ -p \S+ -d \S+ --dport \d+ -j KUBE-MARK-MASQ`)},
	{"interface detector", regexp.MustCompile(` ! -i (veth\+|cbr0) -j KUBE-MARK-MASQ`)},
	{"INVALID drop", regexp.MustCompile(`--ctstate INVALID -j DROP`)},
	{"nfacct INVALID drop counter", regexp.MustCompile(`--ctstate INVALID -m nfacct --nfacct-name \S+ -j DROP`)},
	{"nfacct localhost NodePort counter", regexp.MustCompile(`-d 127\.0\.0\.0/8 --dport \d+ -m nfacct --nfacct-name \S+ -j KUBE-EXT-`)},
	{"partial sync", regexp.MustCompile(`(?m)^\*nat\n:KUBE-SERVICES - \[0:0\]\n:KUBE-NODEPORTS - \[0:0\]\n:KUBE-POSTROUTING - \[0:0\]\n:KUBE-MARK-MASQ - \[0:0\]\n-A`)},
}

func markFeatures(out []byte, seen map[string]int) {
	for _, f := range features {
		if f.re.Match(out) {
			seen[f.name]++
		}
	}
	if !bytes.Contains(out, []byte("--ctstate INVALID")) {
		seen["no INVALID drop (tcp_be_liberal)"]++
	}
}

// runScenario syncs every state of sc in both proxiers and compares.
func runScenario(sc Scenario, observe func(upstream []byte)) error {
	up, err := NewUpstream(sc.Config)
	if err != nil {
		return err
	}
	kn, err := NewKnet(sc.Config)
	if err != nil {
		return err
	}
	var prev State
	for i, st := range sc.States {
		up.Apply(prev, st)
		prev = st
		want, err := up.Sync()
		if err != nil {
			return fmt.Errorf("sync %d: %w", i, err)
		}
		if observe != nil {
			observe(want)
		}
		got, err := kn.Sync(st)
		if err != nil {
			return fmt.Errorf("sync %d: %w", i, err)
		}
		cw, err := canon.Canonical(want)
		if err != nil {
			return fmt.Errorf("sync %d: upstream output: %w", i, err)
		}
		cg, err := canon.Canonical(got)
		if err != nil {
			return fmt.Errorf("sync %d: knet output: %w", i, err)
		}
		if *dumpFlag != "" {
			dump(sc, i, map[string][]byte{"upstream.raw": want, "knet.raw": got, "upstream.canon": []byte(cw), "knet.canon": []byte(cg)})
		}
		if d := cmp.Diff(strings.Split(cw, "\n"), strings.Split(cg, "\n")); d != "" {
			return fmt.Errorf("sync %d (config %+v) differs (-kube-proxy %s +knet):\n%s", i, sc.Config, UpstreamVersion, d)
		}
	}
	return nil
}

// TestRegressions replays the minimal disagreements kept in testdata/regressions: each
// was found by TestRandomScenariosMatchKubeProxy and reduced by hand; its description
// says what knet got wrong.
func TestRegressions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "regressions", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no regression cases in testdata/regressions")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			c, err := LoadCase(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := runScenario(Scenario{Config: c.Config, States: c.States}, nil); err != nil {
				t.Errorf("%s\n%s: %v", c.Description, f, err)
			}
		})
	}
}

// TestVersionDifferences replays the cases in testdata/version-differences, where knet
// follows kube-proxy v1.35 (its modelled release line) and the oracle's v1.37.2 behaves
// differently on purpose. Each must still disagree: when one starts to agree, either knet
// or upstream changed and the case must be moved or removed.
func TestVersionDifferences(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "version-differences", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			c, err := LoadCase(f)
			if err != nil {
				t.Fatal(err)
			}
			err = runScenario(Scenario{Config: c.Config, States: c.States}, nil)
			if err == nil {
				t.Fatalf("%s: knet (v1.35) and kube-proxy %s now agree:\n%s", f, UpstreamVersion, c.Description)
			}
			if len(c.ExpectedDifference) == 0 {
				t.Fatalf("%s: no expectedDifference given", f)
			}
			for _, want := range c.ExpectedDifference {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: the difference does not mention %q:\n%v", f, want, err)
				}
			}
		})
	}
}
