package nft

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// Model is a knftables.Interface backed by knet's nftables model: each transaction's
// text is applied as `nft -f` would apply it, atomically, with the kernel's checks (a rule
// may only jump to an existing chain or look up an existing set; a chain or set that is
// still referenced cannot be deleted). Unlike knftables.Fake it indexes elements and
// rules, so kube-proxy's programming of 10,000 Services runs in well under a second, and
// it keeps creation order, which `nft list ruleset` shows.
type Model struct {
	mint   *knftables.Fake // only mints transactions carrying the default family and table
	tables []*mtable
	// tableHandle numbers tables as the kernel does (one counter per network namespace).
	tableHandle int
}

var _ knftables.Interface = &Model{}

type mtable struct {
	// handle numbers the table's chains, sets, maps, rules and anonymous sets in creation
	// order, as the kernel's per-table handle generator does; deleted objects keep theirs.
	handle int
	t      *nftables.Table
	chains map[string]*nftables.Chain
	sets   map[string]*mset
	refs   map[string]int // chain or "@set" -> number of references from rules and elements
}

type mset struct {
	s    *nftables.Set
	idx  map[string]int // key -> index in s.Elements
	dead int            // tombstones (nil entries) in s.Elements
}

// NewModel returns an empty Model whose transactions default to family and table.
func NewModel(family knftables.Family, table string) *Model {
	return &Model{mint: knftables.NewFake(family, table)}
}

// NewTransaction is part of knftables.Interface.
func (m *Model) NewTransaction() *knftables.Transaction { return m.mint.NewTransaction() }

// Check is part of knftables.Interface: it applies tx and undoes it.
func (m *Model) Check(ctx context.Context, tx *knftables.Transaction) error {
	undo, err := m.apply(tx.String())
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
	return err
}

// Run is part of knftables.Interface.
func (m *Model) Run(ctx context.Context, tx *knftables.Transaction) error {
	undo, err := m.apply(tx.String())
	if err != nil {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	return err
}

// Apply runs transaction text (`add|create|flush|delete|destroy table|chain|set|map|rule|element ...`
// lines) atomically.
func (m *Model) Apply(text string) error {
	undo, err := m.apply(text)
	if err != nil {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	return err
}

func (m *Model) table(fam, name string) *mtable {
	for _, t := range m.tables {
		if string(t.t.Family) == fam && t.t.Name == name {
			return t
		}
	}
	return nil
}

func (m *Model) defaultTable() *mtable {
	return m.tableFor(m.mint)
}

func (m *Model) tableFor(f *knftables.Fake) *mtable {
	// The Fake's context is private; its transactions name family and table in text.
	tx := f.NewTransaction()
	tx.Add(&knftables.Table{})
	w := strings.Fields(tx.String())
	if len(w) < 4 {
		return nil
	}
	return m.table(w[2], w[3])
}

// Ruleset returns a copy of the state as the model, in creation order, rules parsed.
func (m *Model) Ruleset() *nftables.Ruleset {
	rs := &nftables.Ruleset{}
	for _, mt := range m.tables {
		t := *mt.t
		t.Chains = make([]*nftables.Chain, len(mt.t.Chains))
		for i, c := range mt.t.Chains {
			cc := *c
			cc.Rules = append([]*nftables.Rule(nil), c.Rules...)
			t.Chains[i] = &cc
		}
		t.Sets = make([]*nftables.Set, 0, len(mt.t.Sets))
		for _, s := range mt.t.Sets {
			ms := mt.sets[s.Name]
			cs := &nftables.Set{Name: s.Name, Handle: s.Handle, KeyType: s.KeyType, DataType: s.DataType, Flags: s.Flags, Timeout: s.Timeout,
				Policy: s.Policy, Size: s.Size, Comment: s.Comment}
			cs.Elements = make([]*nftables.Element, 0, len(ms.idx))
			for _, e := range s.Elements {
				if e != nil {
					cs.Elements = append(cs.Elements, e)
				}
			}
			t.Sets = append(t.Sets, cs)
		}
		rs.Tables = append(rs.Tables, &t)
	}
	return rs
}

// notFound returns an error knftables.IsNotFound recognises.
func (m *Model) notFound(what string) error {
	_, err := knftables.NewFake(knftables.IPv4Family, "none").List(context.Background(), "chain")
	return fmt.Errorf("%s: %w", what, err)
}

// ListAll is part of knftables.Interface.
func (m *Model) ListAll(ctx context.Context) (map[string][]string, error) {
	t := m.defaultTable()
	if t == nil {
		return nil, m.notFound("no such table")
	}
	out := map[string][]string{}
	for _, kind := range []string{"chain", "set", "map"} {
		l, _ := m.List(ctx, kind)
		if len(l) > 0 {
			out[kind] = l
		}
	}
	return out, nil
}

// List is part of knftables.Interface.
func (m *Model) List(ctx context.Context, objectType string) ([]string, error) {
	t := m.defaultTable()
	if t == nil {
		return nil, m.notFound("no such table")
	}
	var out []string
	switch strings.TrimSuffix(objectType, "s") {
	case "chain":
		for _, c := range t.t.Chains {
			out = append(out, c.Name)
		}
	case "set":
		for _, s := range t.t.Sets {
			if !s.IsMap() {
				out = append(out, s.Name)
			}
		}
	case "map":
		for _, s := range t.t.Sets {
			if s.IsMap() {
				out = append(out, s.Name)
			}
		}
	case "flowtable", "counter":
	default:
		return nil, fmt.Errorf("can't List() type %q", objectType)
	}
	return out, nil
}

// ListRules is part of knftables.Interface.
func (m *Model) ListRules(ctx context.Context, chain string) ([]*knftables.Rule, error) {
	t := m.defaultTable()
	if t == nil {
		return nil, m.notFound("no such table")
	}
	c := t.chains[chain]
	if c == nil {
		return nil, m.notFound("no such chain " + chain)
	}
	out := make([]*knftables.Rule, len(c.Rules))
	for i, r := range c.Rules {
		kr := &knftables.Rule{Chain: chain, Rule: r.Text}
		if r.Comment != "" {
			kr.Comment = ptrTo(r.Comment)
		}
		h := r.Handle
		kr.Handle = &h
		out[i] = kr
	}
	return out, nil
}

// ListElements is part of knftables.Interface.
func (m *Model) ListElements(ctx context.Context, objectType, name string) ([]*knftables.Element, error) {
	t := m.defaultTable()
	if t == nil {
		return nil, m.notFound("no such table")
	}
	ms := t.sets[name]
	if ms == nil {
		return nil, m.notFound("no such " + objectType + " " + name)
	}
	var out []*knftables.Element
	for _, e := range ms.s.Elements {
		if e == nil {
			continue
		}
		ke := &knftables.Element{Key: e.Key, Value: e.Value}
		if ms.s.IsMap() {
			ke.Map = name
		} else {
			ke.Set = name
		}
		if e.Comment != "" {
			ke.Comment = ptrTo(e.Comment)
		}
		out = append(out, ke)
	}
	return out, nil
}

// ListCounters is part of knftables.Interface; the model holds no named counters.
func (m *Model) ListCounters(ctx context.Context) ([]*knftables.Counter, error) { return nil, nil }

func ptrTo[T any](v T) *T { return &v }

// compact drops deleted elements once they are the majority (between transactions only:
// undo closures hold element indices).
func (m *Model) compact() {
	for _, t := range m.tables {
		for _, ms := range t.sets {
			if ms.dead < 1024 || ms.dead*2 < len(ms.s.Elements) {
				continue
			}
			live := ms.s.Elements[:0]
			for _, e := range ms.s.Elements {
				if e != nil {
					ms.idx[e.KeyString()] = len(live)
					live = append(live, e)
				}
			}
			clear(ms.s.Elements[len(live):])
			ms.s.Elements, ms.dead = live, 0
		}
	}
}

// apply applies every line; it returns the undo log (to be run backwards on error). Handles
// are not given back on an aborted transaction: the kernel's generators only count up.
func (m *Model) apply(text string) ([]func(), error) {
	m.compact()
	var undo []func()
	for n := 0; text != ""; n++ {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, err := m.applyLine(line)
		undo = append(undo, u...)
		if err != nil {
			return undo, fmt.Errorf("line %d: %q: %w", n+1, line, err)
		}
	}
	return undo, nil
}

// block parses "{ a ; b ; }" into its statements.
func block(s string) []string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "{")
	s = strings.TrimSuffix(s, "}")
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

func (m *Model) applyLine(line string) ([]func(), error) {
	verb, r1, _ := strings.Cut(line, " ")
	obj, r2, _ := strings.Cut(r1, " ")
	fam, r3, _ := strings.Cut(r2, " ")
	tname, rest, _ := strings.Cut(r3, " ")
	if tname == "" {
		return nil, fmt.Errorf("malformed operation")
	}
	t := m.table(fam, tname)
	if obj == "table" {
		return m.opTable(verb, fam, tname, t, rest)
	}
	if t == nil {
		return nil, m.notFound(fmt.Sprintf("no such table %s %s", fam, tname))
	}
	name, body, _ := strings.Cut(rest, " ")
	switch obj {
	case "chain":
		return m.opChain(verb, t, name, body)
	case "set", "map":
		return m.opSet(verb, t, obj == "map", name, body)
	case "rule":
		return m.opRule(verb, t, name, body)
	case "element":
		return m.opElement(verb, t, name, body)
	}
	return nil, fmt.Errorf("unsupported object %q", obj)
}

func (m *Model) opTable(verb, fam, name string, t *mtable, rest string) ([]func(), error) {
	switch verb {
	case "add", "create":
		if t != nil {
			if verb == "create" {
				return nil, fmt.Errorf("table exists")
			}
			return nil, nil
		}
		m.tableHandle++
		nt := &mtable{t: &nftables.Table{Family: nftables.Family(fam), Name: name, Handle: m.tableHandle}, chains: map[string]*nftables.Chain{}, sets: map[string]*mset{}, refs: map[string]int{}}
		for _, p := range block(rest) {
			if strings.HasPrefix(p, "comment ") {
				nt.t.Comment = unquote(strings.TrimPrefix(p, "comment "))
			}
		}
		m.tables = append(m.tables, nt)
		return []func(){func() { m.tables = m.tables[:len(m.tables)-1] }}, nil
	case "delete", "destroy":
		if t == nil {
			if verb == "destroy" {
				return nil, nil
			}
			return nil, m.notFound("no such table")
		}
		old := append([]*mtable(nil), m.tables...)
		var keep []*mtable
		for _, x := range m.tables {
			if x != t {
				keep = append(keep, x)
			}
		}
		m.tables = keep
		return []func(){func() { m.tables = old }}, nil
	case "flush":
		if t == nil {
			return nil, m.notFound("no such table")
		}
		var undo []func()
		for _, c := range t.t.Chains {
			u, _ := m.opChain("flush", t, c.Name, "")
			undo = append(undo, u...)
		}
		return undo, nil
	}
	return nil, fmt.Errorf("unsupported verb %q for table", verb)
}

func (m *Model) opChain(verb string, t *mtable, name, body string) ([]func(), error) {
	c := t.chains[name]
	switch verb {
	case "add", "create":
		if c != nil {
			if verb == "create" {
				return nil, fmt.Errorf("chain %s exists", name)
			}
			return nil, nil
		}
		t.handle++
		c = &nftables.Chain{Name: name, Handle: t.handle}
		for _, p := range block(body) {
			switch {
			case strings.HasPrefix(p, "type "):
				w := strings.Fields(p)
				for i := 0; i+1 < len(w); i++ {
					switch w[i] {
					case "type":
						c.Type = nftables.ChainType(w[i+1])
					case "hook":
						c.Hook = nftables.Hook(w[i+1])
					case "device":
						c.Device = unquote(w[i+1])
					case "priority":
						pr, err := knftables.ParsePriority(knftables.Family(t.t.Family), w[i+1])
						if err != nil {
							return nil, err
						}
						c.Priority = pr
					}
				}
				c.Policy = "accept"
			case strings.HasPrefix(p, "policy "):
				c.Policy = strings.TrimPrefix(p, "policy ")
			case strings.HasPrefix(p, "comment "):
				c.Comment = unquote(strings.TrimPrefix(p, "comment "))
			}
		}
		t.chains[name] = c
		t.t.Chains = append(t.t.Chains, c)
		return []func(){func() {
			delete(t.chains, name)
			t.t.Chains = t.t.Chains[:len(t.t.Chains)-1]
		}}, nil
	case "flush":
		if c == nil {
			return nil, m.notFound("no such chain " + name)
		}
		old := c.Rules
		for _, r := range old {
			m.unref(t, r.Text)
		}
		c.Rules = nil
		return []func(){func() {
			for _, r := range old {
				m.ref(t, r.Text)
			}
			c.Rules = old
		}}, nil
	case "delete", "destroy":
		if c == nil {
			if verb == "destroy" {
				return nil, nil
			}
			return nil, m.notFound("no such chain " + name)
		}
		if len(c.Rules) > 0 {
			return nil, fmt.Errorf("chain %s is not empty (device or resource busy)", name)
		}
		if t.refs[name] > 0 {
			return nil, fmt.Errorf("chain %s is still referenced (device or resource busy)", name)
		}
		i := chainIndex(t.t.Chains, c)
		delete(t.chains, name)
		t.t.Chains = append(t.t.Chains[:i:i], t.t.Chains[i+1:]...)
		return []func(){func() {
			t.chains[name] = c
			t.t.Chains = append(t.t.Chains[:i:i], append([]*nftables.Chain{c}, t.t.Chains[i:]...)...)
		}}, nil
	}
	return nil, fmt.Errorf("unsupported verb %q for chain", verb)
}

func chainIndex(cs []*nftables.Chain, c *nftables.Chain) int {
	for i, x := range cs {
		if x == c {
			return i
		}
	}
	return -1
}

func (m *Model) opSet(verb string, t *mtable, isMap bool, name, body string) ([]func(), error) {
	ms := t.sets[name]
	switch verb {
	case "add", "create":
		if ms != nil {
			if verb == "create" {
				return nil, fmt.Errorf("set %s exists", name)
			}
			return nil, nil
		}
		t.handle++
		s := &nftables.Set{Name: name, Handle: t.handle}
		for _, p := range block(body) {
			switch {
			case strings.HasPrefix(p, "type ") || strings.HasPrefix(p, "typeof "):
				typ := strings.TrimPrefix(strings.TrimPrefix(p, "type "), "typeof ")
				key, data, hasData := strings.Cut(typ, " : ")
				s.KeyType = strings.Split(key, " . ")
				if hasData {
					s.DataType = data
				}
			case strings.HasPrefix(p, "flags "):
				s.Flags = strings.Split(strings.TrimPrefix(p, "flags "), ",")
			case strings.HasPrefix(p, "timeout "):
				s.Timeout = strings.TrimPrefix(p, "timeout ")
			case strings.HasPrefix(p, "size "):
				s.Size, _ = strconv.Atoi(strings.TrimPrefix(p, "size "))
			case strings.HasPrefix(p, "policy "):
				s.Policy = strings.TrimPrefix(p, "policy ")
			case strings.HasPrefix(p, "comment "):
				s.Comment = unquote(strings.TrimPrefix(p, "comment "))
			}
		}
		if isMap != (s.DataType != "") {
			return nil, fmt.Errorf("%s %s: type %q does not match", map[bool]string{true: "map", false: "set"}[isMap], name, strings.Join(s.KeyType, " . "))
		}
		ms = &mset{s: s, idx: map[string]int{}}
		t.sets[name] = ms
		t.t.Sets = append(t.t.Sets, s)
		return []func(){func() {
			delete(t.sets, name)
			t.t.Sets = t.t.Sets[:len(t.t.Sets)-1]
		}}, nil
	case "flush":
		if ms == nil {
			return nil, m.notFound("no such set " + name)
		}
		oldE, oldIdx, oldDead := ms.s.Elements, ms.idx, ms.dead
		for _, e := range oldE {
			if e != nil {
				m.unrefVerdict(t, e.Value)
			}
		}
		ms.s.Elements, ms.idx, ms.dead = nil, map[string]int{}, 0
		return []func(){func() {
			for _, e := range oldE {
				if e != nil {
					m.refVerdict(t, e.Value)
				}
			}
			ms.s.Elements, ms.idx, ms.dead = oldE, oldIdx, oldDead
		}}, nil
	case "delete", "destroy":
		if ms == nil {
			if verb == "destroy" {
				return nil, nil
			}
			return nil, m.notFound("no such set " + name)
		}
		if t.refs["@"+name] > 0 {
			return nil, fmt.Errorf("set %s is still referenced (device or resource busy)", name)
		}
		for _, e := range ms.s.Elements {
			if e != nil {
				m.unrefVerdict(t, e.Value)
			}
		}
		i := -1
		for j, s := range t.t.Sets {
			if s == ms.s {
				i = j
			}
		}
		delete(t.sets, name)
		t.t.Sets = append(t.t.Sets[:i:i], t.t.Sets[i+1:]...)
		return []func(){func() {
			t.sets[name] = ms
			t.t.Sets = append(t.t.Sets[:i:i], append([]*nftables.Set{ms.s}, t.t.Sets[i:]...)...)
			for _, e := range ms.s.Elements {
				if e != nil {
					m.refVerdict(t, e.Value)
				}
			}
		}}, nil
	}
	return nil, fmt.Errorf("unsupported verb %q for set", verb)
}

// refTargets lists the chains ("name") and sets ("@name") a rule's text refers to.
func refTargets(text string) []string {
	var out []string
	prev := ""
	for i := 0; i < len(text); {
		for i < len(text) && text[i] == ' ' {
			i++
		}
		j := i
		for j < len(text) && text[j] != ' ' {
			j++
		}
		w := text[i:j]
		i = j
		switch {
		case w == "":
		case prev == "jump" || prev == "goto":
			out = append(out, strings.TrimRight(w, ",}"))
		case w[0] == '@' && len(w) > 1:
			out = append(out, "@"+strings.TrimRight(w[1:], ",}"))
		}
		prev = w
	}
	return out
}

func (m *Model) ref(t *mtable, text string) {
	for _, r := range refTargets(text) {
		t.refs[r]++
	}
}

func (m *Model) unref(t *mtable, text string) {
	for _, r := range refTargets(text) {
		t.refs[r]--
	}
}

func (m *Model) refVerdict(t *mtable, value []string) {
	if len(value) == 1 {
		m.ref(t, value[0])
	}
}

func (m *Model) unrefVerdict(t *mtable, value []string) {
	if len(value) == 1 {
		m.unref(t, value[0])
	}
}

func (m *Model) opRule(verb string, t *mtable, chain, body string) ([]func(), error) {
	c := t.chains[chain]
	if c == nil {
		return nil, m.notFound("no such chain " + chain)
	}
	if verb != "add" && verb != "insert" {
		return nil, fmt.Errorf("unsupported verb %q for rule", verb)
	}
	text, comment := splitComment(body)
	for _, r := range refTargets(text) {
		if strings.HasPrefix(r, "@") {
			if t.sets[r[1:]] == nil {
				return nil, m.notFound("rule refers to missing set " + r)
			}
		} else if t.chains[r] == nil {
			return nil, m.notFound("rule jumps to missing chain " + r)
		}
	}
	// Anonymous sets and maps in the rule are kernel objects of their own, created (and
	// numbered) before the rule.
	anon := anonymousSets(text)
	t.handle += anon + 1
	r := &nftables.Rule{Text: text, Comment: comment, Handle: t.handle}
	m.ref(t, text)
	if verb == "insert" {
		c.Rules = append([]*nftables.Rule{r}, c.Rules...)
		return []func(){func() { m.unref(t, text); c.Rules = c.Rules[1:] }}, nil
	}
	c.Rules = append(c.Rules, r)
	return []func(){func() { m.unref(t, text); c.Rules = c.Rules[:len(c.Rules)-1] }}, nil
}

// anonymousSets counts the anonymous sets and maps nft creates for a rule: every `{ ... }`
// with more than one member, and every anonymous verdict map (nft turns a one-member set
// into a plain comparison, but keeps a one-entry map).
func anonymousSets(text string) int {
	n := 0
	for i := 0; i < len(text); i++ {
		if text[i] != '{' {
			continue
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			break
		}
		body := text[i+1 : i+j]
		if strings.Contains(body, " : ") || strings.Contains(body, ",") {
			n++
		}
		i += j
	}
	return n
}

func parseElementBody(body string) (*nftables.Element, error) {
	body = strings.TrimSpace(body)
	if !strings.HasPrefix(body, "{") || !strings.HasSuffix(body, "}") {
		return nil, fmt.Errorf("bad element %q", body)
	}
	inner := strings.TrimSpace(body[1 : len(body)-1])
	e := &nftables.Element{}
	keyPart, valPart, hasVal := cutOutsideQuotes(inner, " : ")
	if hasVal {
		e.Value = strings.Split(strings.TrimSpace(valPart), " . ")
	}
	keyPart = strings.TrimSpace(keyPart)
	if i := strings.Index(keyPart, ` comment "`); i >= 0 {
		e.Comment = unquote(keyPart[i+len(" comment "):])
		keyPart = keyPart[:i]
	}
	e.Key = strings.Split(keyPart, " . ")
	return e, nil
}

func (m *Model) opElement(verb string, t *mtable, set, body string) ([]func(), error) {
	ms := t.sets[set]
	if ms == nil {
		return nil, m.notFound("no such set " + set)
	}
	e, err := parseElementBody(body)
	if err != nil {
		return nil, err
	}
	k := e.KeyString()
	i, exists := ms.idx[k]
	switch verb {
	case "add", "create":
		if exists {
			if verb == "create" {
				return nil, fmt.Errorf("element %s exists", k)
			}
			return nil, nil
		}
		if ms.s.IsMap() && len(e.Value) == 0 {
			return nil, fmt.Errorf("map %s: element %s has no value", set, k)
		}
		if len(e.Value) == 1 {
			for _, r := range refTargets(e.Value[0]) {
				if t.chains[r] == nil {
					return nil, m.notFound("element refers to missing chain " + r)
				}
			}
		}
		ms.idx[k] = len(ms.s.Elements)
		ms.s.Elements = append(ms.s.Elements, e)
		m.refVerdict(t, e.Value)
		return []func(){func() {
			m.unrefVerdict(t, e.Value)
			delete(ms.idx, k)
			ms.s.Elements = ms.s.Elements[:len(ms.s.Elements)-1]
		}}, nil
	case "delete", "destroy":
		if !exists {
			if verb == "destroy" {
				return nil, nil
			}
			return nil, m.notFound("no such element " + k)
		}
		old := ms.s.Elements[i]
		m.unrefVerdict(t, old.Value)
		ms.s.Elements[i] = nil
		delete(ms.idx, k)
		ms.dead++
		return []func(){func() {
			ms.s.Elements[i] = old
			ms.idx[k] = i
			ms.dead--
			m.refVerdict(t, old.Value)
		}}, nil
	}
	return nil, fmt.Errorf("unsupported verb %q for element", verb)
}
