package ipvs

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/sequences.json expectations from the model")

// sequenceCases builds one replayable case per scheduler: four servers (weights 1,2,3,1),
// eight clients, connections kept open, two closes and a quiesce in the middle.
func sequenceCases() []SequenceCase {
	var out []SequenceCase
	for _, s := range Schedulers() {
		c := SequenceCase{Name: "mixed-" + string(s), Scheduler: s, Service: "10.96.0.10:80", Proto: TCP,
			Dests: []SequenceDest{{"10.244.1.10:8080", 1}, {"10.244.1.11:8080", 2}, {"10.244.2.10:8080", 3}, {"10.244.2.11:8080", 1}}}
		if s == MaglevHashing {
			c.Flags = FlagMHPort // as kube-proxy sets it
		}
		for i := 0; i < 16; i++ {
			c.Steps = append(c.Steps, SequenceStep{Src: fmt.Sprintf("192.168.%d.%d:%d", 1+i%2, 10+i%8, 40000+i)})
			if i == 7 {
				zero, two := 0, 2
				c.Steps = append(c.Steps, SequenceStep{Close: &zero}, SequenceStep{Close: &two})
				c.Steps = append(c.Steps, SequenceStep{Weight: &struct {
					Addr   string `json:"addr"`
					Weight int    `json:"weight"`
				}{"10.244.2.10:8080", 0}})
			}
		}
		out = append(out, c)
	}
	return out
}

// TestSequenceFile runs testdata/sequences.json, the file the kernel lab replays on a real
// ip_vs, and checks the model still gives the recorded servers. twos is random: its steps
// carry no expectation.
func TestSequenceFile(t *testing.T) {
	const path = "testdata/sequences.json"
	if *update {
		cases := sequenceCases()
		for ci := range cases {
			got, err := RunSequence(cases[ci])
			if err != nil {
				t.Fatal(err)
			}
			if !cases[ci].Scheduler.Deterministic() {
				continue
			}
			k := 0
			for si := range cases[ci].Steps {
				if cases[ci].Steps[si].Src != "" {
					cases[ci].Steps[si].Want = got[k]
					k++
				}
			}
		}
		b, err := json.MarshalIndent(cases, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []SequenceCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != len(Schedulers()) {
		t.Fatalf("%d cases, want one per scheduler", len(cases))
	}
	for _, c := range cases {
		got, err := RunSequence(c)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Scheduler.Deterministic() {
			continue
		}
		var want []string
		for _, s := range c.Steps {
			if s.Src != "" {
				want = append(want, s.Want)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-recorded +model):\n%s", c.Name, diff)
		}
	}
}
