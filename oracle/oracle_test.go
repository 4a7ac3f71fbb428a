package oracle

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
	nFlag     = flag.Int("scenarios", 200, "number of random scenarios")
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
	for _, seed := range seeds {
		sc := NewScenario(seed, *syncsFlag, genOpts())
		if err := runScenario(sc); err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("scenario -seed=%d: %v", seed, err)
			}
		}
	}
	if failed > 5 {
		t.Errorf("%d of %d scenarios disagree (first 5 shown)", failed, len(seeds))
	}
}

// runScenario syncs every state of sc in both proxiers and compares.
func runScenario(sc Scenario) error {
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
		got, err := kn.Sync(st)
		if err != nil {
			return fmt.Errorf("sync %d: %w", i, err)
		}
		cw, err := Canonical(want)
		if err != nil {
			return fmt.Errorf("sync %d: upstream output: %w", i, err)
		}
		cg, err := Canonical(got)
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
			if err := runScenario(Scenario{Config: c.Config, States: c.States}); err != nil {
				t.Errorf("%s\n%s: %v", c.Description, f, err)
			}
		})
	}
}
