package nft

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// Recorder is a knftables.Fake (the library's in-memory nftables model, which checks
// transactions as the kernel does) that also remembers the order in which chains, sets
// and maps were created: `nft list ruleset` lists them in creation order, which the Fake
// does not keep.
type Recorder struct {
	*knftables.Fake
	order map[string]int
	next  int
}

var _ knftables.Interface = &Recorder{}

// NewRecorder returns an empty Recorder for one family and table ("" and "" for any).
func NewRecorder(family knftables.Family, table string) *Recorder {
	return &Recorder{Fake: knftables.NewFake(family, table), order: map[string]int{}}
}

// Run is part of knftables.Interface: it runs tx on the Fake and, when it succeeds,
// records creations and deletions in transaction order.
func (r *Recorder) Run(ctx context.Context, tx *knftables.Transaction) error {
	text := tx.String()
	if err := r.Fake.Run(ctx, tx); err != nil {
		return err
	}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		verb, obj := f[0], f[1]
		if obj == "map" {
			obj = "set"
		}
		if obj != "chain" && obj != "set" && obj != "table" {
			continue
		}
		key := obj + " " + f[2] + " " + f[3]
		if obj != "table" {
			key += " " + f[4]
		}
		switch verb {
		case "add", "create":
			if _, ok := r.order[key]; !ok {
				r.order[key] = r.next
				r.next++
			}
		case "delete", "destroy":
			delete(r.order, key)
			if obj == "table" {
				prefix := f[2] + " " + f[3] + " "
				for k := range r.order {
					if strings.HasPrefix(strings.SplitN(k, " ", 2)[1], prefix) {
						delete(r.order, k)
					}
				}
			}
		}
	}
	return nil
}

// Ruleset converts the Recorder's state into the model, objects in creation order.
func (r *Recorder) Ruleset() (*nftables.Ruleset, error) {
	return fromFake(r.Fake, r.order)
}

// FromFake converts a knftables.Fake into the model. Without creation order, chains,
// sets and maps come out sorted by name.
func FromFake(f *knftables.Fake) (*nftables.Ruleset, error) {
	return fromFake(f, nil)
}

func fromFake(f *knftables.Fake, order map[string]int) (*nftables.Ruleset, error) {
	f.RLock()
	defer f.RUnlock()
	rs := &nftables.Ruleset{}
	type tkey struct {
		fam  knftables.Family
		name string
	}
	var tables []tkey
	for fam, m := range f.Tables {
		for name := range m {
			tables = append(tables, tkey{fam, name})
		}
	}
	pos := func(key string) int {
		if p, ok := order[key]; ok {
			return p
		}
		return 1 << 30
	}
	sort.Slice(tables, func(i, j int) bool {
		pi := pos(fmt.Sprintf("table %s %s", tables[i].fam, tables[i].name))
		pj := pos(fmt.Sprintf("table %s %s", tables[j].fam, tables[j].name))
		if pi != pj {
			return pi < pj
		}
		if tables[i].fam != tables[j].fam {
			return tables[i].fam < tables[j].fam
		}
		return tables[i].name < tables[j].name
	})
	for _, tk := range tables {
		ft := f.Tables[tk.fam][tk.name]
		t := &nftables.Table{Family: nftables.Family(tk.fam), Name: tk.name}
		if ft.Comment != nil {
			t.Comment = *ft.Comment
		}
		for _, fl := range ft.Flags {
			t.Flags = append(t.Flags, string(fl))
		}
		objKey := func(kind, name string) string {
			return fmt.Sprintf("%s %s %s %s", kind, tk.fam, tk.name, name)
		}
		var chainNames []string
		for n := range ft.Chains {
			chainNames = append(chainNames, n)
		}
		sort.Slice(chainNames, func(i, j int) bool {
			pi, pj := pos(objKey("chain", chainNames[i])), pos(objKey("chain", chainNames[j]))
			if pi != pj {
				return pi < pj
			}
			return chainNames[i] < chainNames[j]
		})
		for _, n := range chainNames {
			fc := ft.Chains[n]
			c := &nftables.Chain{Name: n}
			if fc.Type != nil {
				c.Type = nftables.ChainType(*fc.Type)
			}
			if fc.Hook != nil {
				c.Hook = nftables.Hook(*fc.Hook)
			}
			if fc.Priority != nil {
				p, err := knftables.ParsePriority(tk.fam, string(*fc.Priority))
				if err != nil {
					return nil, fmt.Errorf("chain %s: %w", n, err)
				}
				c.Priority = p
			}
			if fc.Hook != nil {
				c.Policy = "accept"
				if fc.Policy != nil {
					c.Policy = string(*fc.Policy)
				}
			}
			if fc.Device != nil {
				c.Device = *fc.Device
			}
			if fc.Comment != nil {
				c.Comment = *fc.Comment
			}
			for _, fr := range fc.Rules {
				r := &nftables.Rule{Text: fr.Rule}
				if fr.Comment != nil {
					r.Comment = *fr.Comment
				}
				if fr.Handle != nil {
					r.Handle = *fr.Handle
				}
				c.Rules = append(c.Rules, r)
			}
			t.Chains = append(t.Chains, c)
		}
		var sets []*nftables.Set
		setPos := map[*nftables.Set]int{}
		for n, fs := range ft.Sets {
			s := convertSet(n, fs.Type, fs.TypeOf, fs.Flags, fs.Timeout, fs.Size, fs.Policy, fs.Comment, fs.Elements)
			sets = append(sets, s)
			setPos[s] = pos(objKey("set", n))
		}
		for n, fm := range ft.Maps {
			s := convertSet(n, fm.Type, fm.TypeOf, fm.Flags, fm.Timeout, fm.Size, fm.Policy, fm.Comment, fm.Elements)
			sets = append(sets, s)
			setPos[s] = pos(objKey("set", n))
		}
		sort.Slice(sets, func(i, j int) bool {
			if setPos[sets[i]] != setPos[sets[j]] {
				return setPos[sets[i]] < setPos[sets[j]]
			}
			return sets[i].Name < sets[j].Name
		})
		t.Sets = sets
		rs.Tables = append(rs.Tables, t)
	}
	return rs, nil
}

func convertSet(name, typ, typeOf string, flags []knftables.SetFlag, timeout *time.Duration, size *uint64, policy *knftables.SetPolicy, comment *string, elems []*knftables.Element) *nftables.Set {
	s := &nftables.Set{Name: name}
	if typ == "" {
		typ = typeOf
	}
	key, data, isMap := strings.Cut(typ, " : ")
	for _, k := range strings.Split(key, " . ") {
		s.KeyType = append(s.KeyType, strings.TrimSpace(k))
	}
	if isMap {
		s.DataType = strings.TrimSpace(data)
	}
	for _, fl := range flags {
		s.Flags = append(s.Flags, string(fl))
	}
	if timeout != nil {
		s.Timeout = fmt.Sprintf("%ds", int(timeout.Seconds()))
	}
	if size != nil {
		s.Size = int(*size)
	}
	if policy != nil {
		s.Policy = string(*policy)
	}
	if comment != nil {
		s.Comment = *comment
	}
	for _, fe := range elems {
		e := &nftables.Element{Key: append([]string(nil), fe.Key...), Value: append([]string(nil), fe.Value...)}
		if fe.Comment != nil {
			e.Comment = *fe.Comment
		}
		s.Elements = append(s.Elements, e)
	}
	return s
}

// objectOrder is the order in which a knftables dump must add objects for the Fake (and
// the kernel) to accept it: containers before what refers to them.
var objectOrder = []string{"table", "flowtable", "counter", "chain", "set", "map", "rule", "element"}

// ParseTransaction parses knftables transaction text (`add table|chain|set|map|rule|element`
// lines, as kube-proxy's test dumps and knftables.Fake.Dump write them, in any order) into
// the model. Objects keep the order in which their `add` lines appear.
func ParseTransaction(text string) (*nftables.Ruleset, error) {
	lines := strings.Split(text, "\n")
	buckets := make(map[string][]string)
	for i, line := range lines {
		l := strings.TrimSpace(line)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "add" {
			return nil, fmt.Errorf("line %d: not an \"add\" line: %q", i+1, l)
		}
		known := false
		for _, o := range objectOrder {
			if f[1] == o {
				known = true
			}
		}
		if !known {
			return nil, fmt.Errorf("line %d: unknown object %q", i+1, f[1])
		}
		buckets[f[1]] = append(buckets[f[1]], l)
	}
	var ordered []string
	for _, o := range objectOrder {
		ordered = append(ordered, buckets[o]...)
	}
	rec := NewRecorder("", "")
	// ParseDump runs one transaction; replay it through Run so the Recorder sees the order.
	probe := knftables.NewFake("", "")
	if err := probe.ParseDump(strings.Join(ordered, "\n")); err != nil {
		return nil, fmt.Errorf("parse transaction: %w", err)
	}
	rec.Fake = probe
	for _, l := range ordered {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		obj := f[1]
		if obj == "map" {
			obj = "set"
		}
		if obj != "chain" && obj != "set" && obj != "table" {
			continue
		}
		key := obj + " " + f[2] + " " + f[3]
		if obj != "table" {
			key += " " + strings.TrimSuffix(f[4], "{")
		}
		if _, ok := rec.order[key]; !ok {
			rec.order[key] = rec.next
			rec.next++
		}
	}
	return rec.Ruleset()
}
