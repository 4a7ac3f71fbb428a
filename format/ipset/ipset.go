// Package ipset prints and parses `ipset save` and `ipset list` (with -t, -n and -sorted)
// byte for byte as ipset v7.17 prints them on a Linux 6.x kernel, from or into a
// dataplane/ipset Sets.
//
// Fidelity notes: members of hash sets are listed by the kernel in hash-bucket order under
// the set's initval (random unless given at create time); the printer reproduces that order
// (dataplane/ipset Set.KernelOrder: jhash2 of the kernel's element layout), so a set parsed
// from a dump, or created with a known initval, prints exactly as the kernel lists it. A
// rendered set has initval 0 where a real one has a random value. Options.Sorted prints the
// `-sorted` order. `ipset save` and `ipset list` show list:set sets after every other set, as the
// kernel dumps them in a second pass. "Size in memory" is the kernel's figure when parsed,
// else dataplane/ipset's estimate.
package ipset

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	dpipset "github.com/knet-dev/knet/dataplane/ipset"
)

// Version is the ipset version whose output this package reproduces.
const Version = "v7.17"

// Options tune the printers.
type Options struct {
	// Sorted prints members as `-sorted` does.
	Sorted bool
	// Terse is `ipset list -t` (no members); Names is `ipset list -n`.
	Terse, Names bool
}

// ordered returns the sets in dump order: list:set last.
func ordered(ss *dpipset.Sets) []*dpipset.Set {
	if ss == nil {
		return nil
	}
	var out, lists []*dpipset.Set
	for _, s := range ss.Sets {
		if s.Type == dpipset.ListSet {
			lists = append(lists, s)
		} else {
			out = append(out, s)
		}
	}
	return append(out, lists...)
}

// Header returns a set's create options as ipset prints them after the type.
func Header(s *dpipset.Set) string {
	var b strings.Builder
	switch s.Type {
	case dpipset.BitmapPort:
		fmt.Fprintf(&b, "range %d-%d", s.RangeFrom, s.RangeTo)
	case dpipset.ListSet:
		fmt.Fprintf(&b, "size %d", s.Size)
	default:
		fmt.Fprintf(&b, "family %s hashsize %d maxelem %d", s.Family, s.HashSize, s.MaxElem)
	}
	if s.HasTimeout {
		fmt.Fprintf(&b, " timeout %d", s.Timeout)
	}
	if s.Counters {
		b.WriteString(" counters")
	}
	if s.Comment {
		b.WriteString(" comment")
	}
	if s.SkbInfo {
		b.WriteString(" skbinfo")
	}
	if s.Type != dpipset.BitmapPort && s.Type != dpipset.ListSet {
		fmt.Fprintf(&b, " bucketsize %d initval 0x%08x", s.BucketSize, s.InitVal)
	}
	return b.String()
}

// Element returns a member as ipset prints it, with its extensions.
func Element(s *dpipset.Set, m dpipset.Member) string {
	var b strings.Builder
	b.WriteString(s.Key(m))
	if m.NoMatch {
		b.WriteString(" nomatch")
	}
	if m.Timeout >= 0 && s.HasTimeout {
		fmt.Fprintf(&b, " timeout %d", m.Timeout)
	}
	if s.Counters {
		fmt.Fprintf(&b, " packets %d bytes %d", m.Packets, m.Bytes)
	}
	if s.Comment && m.Comment != "" {
		fmt.Fprintf(&b, " comment %q", m.Comment)
	}
	if s.SkbInfo && m.HasSkbMark {
		fmt.Fprintf(&b, " skbmark 0x%x/0x%x", m.SkbMark, m.SkbMsk)
	}
	return b.String()
}

func members(s *dpipset.Set, sorted bool) []dpipset.Member {
	if sorted {
		return s.SortedMembers()
	}
	return s.KernelOrder()
}

// WriteSave writes `ipset save`.
func WriteSave(w io.Writer, ss *dpipset.Sets, opts Options) error {
	bw := bufio.NewWriter(w)
	for _, s := range ordered(ss) {
		fmt.Fprintf(bw, "create %s %s %s\n", s.Name, s.Type, Header(s))
		for _, m := range members(s, opts.Sorted) {
			fmt.Fprintf(bw, "add %s %s\n", s.Name, Element(s, m))
		}
	}
	return bw.Flush()
}

// WriteList writes `ipset list` (-t with Terse, -n with Names).
func WriteList(w io.Writer, ss *dpipset.Sets, opts Options) error {
	bw := bufio.NewWriter(w)
	for i, s := range ordered(ss) {
		if opts.Names {
			fmt.Fprintf(bw, "%s\n", s.Name)
			continue
		}
		if i > 0 {
			bw.WriteString("\n")
		}
		rev := s.Revision
		if rev == 0 {
			rev = s.Type.Revision()
		}
		fmt.Fprintf(bw, "Name: %s\nType: %s\nRevision: %d\nHeader: %s\nSize in memory: %d\nReferences: %d\nNumber of entries: %d\n",
			s.Name, s.Type, rev, Header(s), s.MemoryEstimate(), ss.Refs(s), s.Count())
		if opts.Terse {
			continue
		}
		bw.WriteString("Members:\n")
		for _, m := range members(s, opts.Sorted) {
			fmt.Fprintf(bw, "%s\n", Element(s, m))
		}
	}
	return bw.Flush()
}

// Diagnostic is a line the parser did not understand.
type Diagnostic struct {
	File   string
	Line   int
	Text   string
	Reason string
}

func (d Diagnostic) Error() string {
	return fmt.Sprintf("%s:%d: %s: %q", d.File, d.Line, d.Reason, d.Text)
}

// Line is one input line and the set or member it holds.
type Line struct {
	Number int
	Text   string
	// Kind is "create", "add", "name", "field", "members", "member", "blank" or "unknown".
	Kind   string
	Set    *dpipset.Set
	Member *dpipset.Member
}

// Dump is a parsed `ipset save` or `ipset list`.
type Dump struct {
	// Format is "save" or "list".
	Format  string
	Sets    *dpipset.Sets
	Lines   []Line
	Skipped []Diagnostic
}

// Parse reads `ipset save` or `ipset list` output. It fails only when the input is neither;
// lines it cannot use are reported in Dump.Skipped with their numbers.
func Parse(file string, data []byte) (*Dump, error) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	d := &Dump{Sets: dpipset.New()}
	first := ""
	for _, l := range lines {
		if t := strings.TrimSpace(l); t != "" {
			first = t
			break
		}
	}
	switch {
	case first == "":
		d.Format = "save"
		return d, nil
	case strings.HasPrefix(first, "create ") || strings.HasPrefix(first, "add "):
		d.Format = "save"
	case strings.HasPrefix(first, "Name: "):
		d.Format = "list"
	default:
		return nil, fmt.Errorf("%s:1: not ipset save or ipset list output: %q", file, first)
	}
	p := &parser{file: file, d: d}
	for i, l := range lines {
		if d.Format == "save" {
			p.saveLine(i+1, l)
		} else {
			p.listLine(i+1, l)
		}
	}
	p.flush()
	return d, nil
}

type parser struct {
	file string
	d    *Dump
	// list state
	cur       *dpipset.Set
	inMembers bool
	pending   []pendingMember
}

type pendingMember struct {
	n    int
	text string
	set  *dpipset.Set
	m    dpipset.Member
}

func (p *parser) skip(n int, text, reason string) {
	p.d.Skipped = append(p.d.Skipped, Diagnostic{File: p.file, Line: n, Text: text, Reason: reason})
	p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: "unknown"})
}

func (p *parser) saveLine(n int, text string) {
	t := strings.TrimSpace(text)
	if t == "" {
		p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: "blank"})
		return
	}
	f := fields(t)
	switch {
	case f[0] == "create" && len(f) >= 3:
		s, err := parseCreate(f[1], f[2], f[3:])
		if err != nil {
			p.skip(n, text, err.Error())
			return
		}
		if err := p.d.Sets.Create(s); err != nil {
			p.skip(n, text, err.Error())
			return
		}
		p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: "create", Set: s})
	case f[0] == "add" && len(f) >= 3:
		s := p.d.Sets.Get(f[1])
		if s == nil {
			p.skip(n, text, "add to a set not created before")
			return
		}
		m, err := parseElement(s, f[2], f[3:])
		if err != nil {
			p.skip(n, text, err.Error())
			return
		}
		if s.Type == dpipset.ListSet {
			// list:set members may name sets saved later; add after all creates
			p.pending = append(p.pending, pendingMember{n, text, s, m})
			return
		}
		p.addMember(n, text, s, m)
	default:
		p.skip(n, text, "want create or add")
	}
}

func (p *parser) addMember(n int, text string, s *dpipset.Set, m dpipset.Member) {
	if err := p.d.Sets.Add(s.Name, m); err != nil {
		p.skip(n, text, err.Error())
		return
	}
	mm := &s.Members[len(s.Members)-1]
	p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: map[string]string{"save": "add", "list": "member"}[p.d.Format], Set: s, Member: mm})
}

func (p *parser) flush() {
	p.endListSet()
	for _, pm := range p.pending {
		p.addMember(pm.n, pm.text, pm.set, pm.m)
	}
	p.pending = nil
	if p.d.Format == "list" {
		// the printed count includes list:set membership; keep only the rule references
		for _, s := range p.d.Sets.Sets {
			if extra := p.d.Sets.Refs(s) - s.References; extra > 0 && s.References >= extra {
				s.References -= extra
			}
		}
	}
	// keep Lines in input order
	ls := p.d.Lines
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Number < ls[j-1].Number; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// fields splits on spaces, keeping "quoted comments" together (unquoted).
func fields(s string) []string {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return out
		}
		if s[0] == '"' {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				out = append(out, "\x00"+s) // unterminated: flagged by the caller
				return out
			}
			q, err := strconv.Unquote(s[:end+1])
			if err != nil {
				q = s[1:end]
			}
			out = append(out, "\x01"+q)
			s = s[end+1:]
			continue
		}
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i:]
	}
}

func parseCreate(name, typ string, opts []string) (*dpipset.Set, error) {
	t, err := dpipset.ParseType(typ)
	if err != nil {
		return nil, err
	}
	s := &dpipset.Set{Name: name, Type: t}
	for i := 0; i < len(opts); i++ {
		o := opts[i]
		val := func() (string, error) {
			if i+1 >= len(opts) {
				return "", fmt.Errorf("option %s needs a value", o)
			}
			i++
			return opts[i], nil
		}
		num := func(bits int) (uint64, error) {
			v, err := val()
			if err != nil {
				return 0, err
			}
			x, err := strconv.ParseUint(v, 0, bits)
			if err != nil {
				return 0, fmt.Errorf("option %s: bad number %q", o, v)
			}
			return x, nil
		}
		switch o {
		case "family":
			v, err := val()
			if err != nil {
				return nil, err
			}
			if v != "inet" && v != "inet6" {
				return nil, fmt.Errorf("bad family %q", v)
			}
			s.Family = dpipset.Family(v)
		case "hashsize", "maxelem", "bucketsize", "size", "timeout", "initval":
			x, err := num(32)
			if err != nil {
				return nil, err
			}
			switch o {
			case "hashsize":
				s.HashSize = uint32(x)
			case "maxelem":
				s.MaxElem = uint32(x)
			case "bucketsize":
				s.BucketSize = uint32(x)
			case "size":
				s.Size = uint32(x)
			case "timeout":
				s.HasTimeout, s.Timeout = true, uint32(x)
			case "initval":
				s.InitVal = uint32(x)
			}
		case "range":
			v, err := val()
			if err != nil {
				return nil, err
			}
			a, b, ok := strings.Cut(v, "-")
			lo, e1 := strconv.ParseUint(a, 10, 16)
			hi, e2 := strconv.ParseUint(b, 10, 16)
			if !ok || e1 != nil || e2 != nil {
				return nil, fmt.Errorf("bad port range %q", v)
			}
			s.RangeFrom, s.RangeTo = uint16(lo), uint16(hi)
		case "counters":
			s.Counters = true
		case "comment":
			s.Comment = true
		case "skbinfo":
			s.SkbInfo = true
		case "forceadd":
		default:
			return nil, fmt.Errorf("unknown create option %q", o)
		}
	}
	return s, nil
}

func parseProtoPort(s string) (string, uint16, error) {
	proto, port, ok := strings.Cut(s, ":")
	if !ok {
		proto, port = "tcp", s // ipset's default protocol
	}
	switch proto {
	case "tcp", "udp", "sctp", "udplite":
	default:
		return "", 0, fmt.Errorf("unsupported protocol %q in %q", proto, s)
	}
	v, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	return proto, uint16(v), nil
}

func parseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseElement(s *dpipset.Set, elem string, ext []string) (dpipset.Member, error) {
	m := dpipset.NewMember()
	parts := strings.Split(elem, ",")
	want := map[dpipset.Type]int{dpipset.HashIP: 1, dpipset.HashIPPort: 2, dpipset.HashIPPortIP: 3, dpipset.HashIPPortNet: 3, dpipset.HashNet: 1, dpipset.BitmapPort: 1, dpipset.ListSet: 1}[s.Type]
	if len(parts) != want {
		return m, fmt.Errorf("element %q: %s takes %d parts", elem, s.Type, want)
	}
	var err error
	switch s.Type {
	case dpipset.HashIP:
		m.IP, err = netip.ParseAddr(parts[0])
	case dpipset.HashIPPort, dpipset.HashIPPortIP, dpipset.HashIPPortNet:
		if m.IP, err = netip.ParseAddr(parts[0]); err != nil {
			break
		}
		if m.Proto, m.Port, err = parseProtoPort(parts[1]); err != nil {
			break
		}
		if s.Type == dpipset.HashIPPortIP {
			m.IP2, err = netip.ParseAddr(parts[2])
		} else if s.Type == dpipset.HashIPPortNet {
			m.Net, err = parseNet(parts[2])
		}
	case dpipset.HashNet:
		m.Net, err = parseNet(parts[0])
	case dpipset.BitmapPort:
		var v uint64
		v, err = strconv.ParseUint(parts[0], 10, 16)
		m.Port = uint16(v)
	case dpipset.ListSet:
		m.SetName = parts[0]
	}
	if err != nil {
		return m, fmt.Errorf("element %q: %w", elem, err)
	}
	for i := 0; i < len(ext); i++ {
		o := ext[i]
		next := func() (string, error) {
			if i+1 >= len(ext) {
				return "", fmt.Errorf("%s needs a value", o)
			}
			i++
			return ext[i], nil
		}
		switch o {
		case "nomatch":
			m.NoMatch = true
		case "timeout", "packets", "bytes":
			v, err := next()
			if err != nil {
				return m, err
			}
			x, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return m, fmt.Errorf("%s: bad number %q", o, v)
			}
			switch o {
			case "timeout":
				m.Timeout = int64(x)
			case "packets":
				m.Packets, m.HasCounters = x, true
			case "bytes":
				m.Bytes, m.HasCounters = x, true
			}
		case "comment":
			v, err := next()
			if err != nil {
				return m, err
			}
			if !strings.HasPrefix(v, "\x01") {
				return m, fmt.Errorf("comment must be quoted")
			}
			m.Comment = v[1:]
		case "skbmark":
			v, err := next()
			if err != nil {
				return m, err
			}
			a, b, _ := strings.Cut(v, "/")
			x, e1 := strconv.ParseUint(a, 0, 32)
			y := uint64(0xffffffff)
			var e2 error
			if b != "" {
				y, e2 = strconv.ParseUint(b, 0, 32)
			}
			if e1 != nil || e2 != nil {
				return m, fmt.Errorf("bad skbmark %q", v)
			}
			m.SkbMark, m.SkbMsk, m.HasSkbMark = uint32(x), uint32(y), true
		default:
			return m, fmt.Errorf("unknown element option %q", strings.TrimLeft(o, "\x00\x01"))
		}
	}
	return m, nil
}

func (p *parser) endListSet() {
	if p.cur == nil {
		return
	}
	p.cur = nil
	p.inMembers = false
}

func (p *parser) listLine(n int, text string) {
	t := strings.TrimRight(text, " ")
	if strings.TrimSpace(t) == "" {
		p.endListSet()
		p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: "blank"})
		return
	}
	if name, ok := strings.CutPrefix(t, "Name: "); ok {
		p.endListSet()
		p.cur = &dpipset.Set{Name: name}
		p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: "name"})
		return
	}
	if p.cur == nil {
		p.skip(n, text, "line outside a set block (want \"Name: ...\")")
		return
	}
	if p.inMembers {
		s := p.d.Sets.Get(p.cur.Name)
		if s == nil {
			p.skip(n, text, "member of a set whose header was not understood")
			return
		}
		f := fields(t)
		m, err := parseElement(s, f[0], f[1:])
		if err != nil {
			p.skip(n, text, err.Error())
			return
		}
		if s.Type == dpipset.ListSet {
			p.pending = append(p.pending, pendingMember{n, text, s, m})
			return
		}
		p.addMember(n, text, s, m)
		return
	}
	key, val, ok := strings.Cut(t, ": ")
	if t == "Members:" {
		key, ok = "Members", true
	}
	if !ok {
		p.skip(n, text, "want \"Field: value\"")
		return
	}
	s := p.cur
	field := func() {
		p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: "field", Set: p.d.Sets.Get(s.Name)})
	}
	if (key == "Type" || key == "Revision") && p.d.Sets.Get(s.Name) != nil {
		p.skip(n, text, key+" after the Header of set "+s.Name)
		return
	}
	switch key {
	case "Type":
		typ, err := dpipset.ParseType(val)
		if err != nil {
			p.skip(n, text, err.Error())
			return
		}
		s.Type = typ
		field()
	case "Revision":
		r, err := strconv.Atoi(val)
		if err != nil {
			p.skip(n, text, "bad revision")
			return
		}
		s.Revision = r
		field()
	case "Header":
		if p.d.Sets.Get(s.Name) != nil {
			p.skip(n, text, "second Header for set "+s.Name)
			return
		}
		hs, err := parseCreate(s.Name, string(s.Type), fields(val))
		if err != nil {
			p.skip(n, text, err.Error())
			return
		}
		hs.Revision = s.Revision
		*s = *hs
		if err := p.d.Sets.Create(s); err != nil {
			p.skip(n, text, err.Error())
			return
		}
		field()
	case "Size in memory", "References", "Number of entries":
		v, err := strconv.Atoi(val)
		if err != nil {
			p.skip(n, text, "bad number")
			return
		}
		switch key {
		case "Size in memory":
			s.MemSize = v
		case "References":
			s.References = v
		case "Number of entries":
			s.Entries = v
		}
		field()
	case "Members":
		p.inMembers = true
		p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: "members", Set: p.d.Sets.Get(s.Name)})
	default:
		p.skip(n, text, "unknown field "+strconv.Quote(key))
	}
}
