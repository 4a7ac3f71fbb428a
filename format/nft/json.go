package nft

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// nft 1.0.6's JSON metainfo.
const (
	jsonReleaseName   = "Lester Gooch #5"
	jsonSchemaVersion = 1
)

// jw writes JSON the way nft's jansson output does: `"key": value`, `, ` between members,
// everything on one line.
type jw struct {
	b     *bufio.Writer
	first []bool
}

func (j *jw) open(c byte) {
	j.sep()
	j.b.WriteByte(c)
	j.first = append(j.first, true)
}

func (j *jw) close(c byte) {
	j.b.WriteByte(c)
	j.first = j.first[:len(j.first)-1]
}

func (j *jw) sep() {
	if n := len(j.first); n > 0 {
		if !j.first[n-1] {
			j.b.WriteString(", ")
		}
		j.first[n-1] = false
	}
}

func (j *jw) key(k string) {
	j.sep()
	j.b.WriteString(strconv.Quote(k))
	j.b.WriteString(": ")
	// the value that follows is not a new member
	j.first = append(j.first, true)
}

func (j *jw) endKey() { j.first = j.first[:len(j.first)-1] }

func (j *jw) str(s string) { j.sep(); j.b.WriteString(jsonQuote(s)) }
func (j *jw) num(n int64)  { j.sep(); j.b.WriteString(strconv.FormatInt(n, 10)) }
func (j *jw) null()        { j.sep(); j.b.WriteString("null") }

// raw writes a pre-built value.
func (j *jw) raw(s string) { j.sep(); j.b.WriteString(s) }

func (j *jw) kstr(k, v string) { j.key(k); j.str(v); j.endKey() }
func (j *jw) knum(k string, v int64) {
	j.key(k)
	j.num(v)
	j.endKey()
}

// jsonQuote quotes like jansson: only ", \ and control characters escaped.
func jsonQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// WriteJSON prints rs as `nft -j list ruleset` (nft 1.0.6) does: one line, the metainfo,
// then per table the table, its sets and maps, its chains, and its rules chain by chain.
func WriteJSON(w io.Writer, rs *nftables.Ruleset, opts WriteOptions) error {
	bw := bufio.NewWriter(w)
	j := &jw{b: bw}
	j.open('{')
	j.key("nftables")
	j.open('[')
	j.open('{')
	j.key("metainfo")
	j.open('{')
	j.kstr("version", DefaultVersion)
	j.kstr("release_name", jsonReleaseName)
	j.knum("json_schema_version", jsonSchemaVersion)
	j.close('}')
	j.endKey()
	j.close('}')
	for _, t := range rs.Tables {
		if err := writeTableJSON(j, t); err != nil {
			return err
		}
	}
	j.close(']')
	j.endKey()
	j.close('}')
	bw.WriteByte('\n')
	return bw.Flush()
}

func writeTableJSON(j *jw, t *nftables.Table) error {
	fam := string(t.Family)
	j.open('{')
	j.key("table")
	j.open('{')
	j.kstr("family", fam)
	j.kstr("name", t.Name)
	// nft 1.0.6 prints no table or chain comments in JSON (it does in text).
	j.knum("handle", int64(t.Handle))
	j.close('}')
	j.endKey()
	j.close('}')
	for _, s := range t.Sets {
		if err := writeSetJSON(j, t, s); err != nil {
			return err
		}
	}
	for _, c := range t.Chains {
		j.open('{')
		j.key("chain")
		j.open('{')
		j.kstr("family", fam)
		j.kstr("table", t.Name)
		j.kstr("name", c.Name)
		j.knum("handle", int64(c.Handle))
		if c.IsBase() {
			j.kstr("type", string(c.Type))
			j.kstr("hook", string(c.Hook))
			if c.Device != "" {
				j.kstr("dev", c.Device)
			}
			j.knum("prio", int64(c.Priority))
			pol := c.Policy
			if pol == "" {
				pol = "accept"
			}
			j.kstr("policy", pol)
		}
		j.close('}')
		j.endKey()
		j.close('}')
	}
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			stmts := r.Stmts
			if stmts == nil {
				var err error
				if stmts, err = nftables.ParseRule(r.Text); err != nil {
					return fmt.Errorf("chain %s rule %q: %w", c.Name, r.Text, err)
				}
			}
			j.open('{')
			j.key("rule")
			j.open('{')
			j.kstr("family", fam)
			j.kstr("table", t.Name)
			j.kstr("chain", c.Name)
			j.knum("handle", int64(r.Handle))
			if r.Comment != "" {
				j.kstr("comment", r.Comment)
			}
			j.key("expr")
			j.open('[')
			for _, st := range stmts {
				if err := writeStmtJSON(j, t.Family, st); err != nil {
					return fmt.Errorf("chain %s rule %q: %w", c.Name, r.Text, err)
				}
			}
			j.close(']')
			j.endKey()
			j.close('}')
			j.endKey()
			j.close('}')
		}
	}
	return nil
}

func writeSetJSON(j *jw, t *nftables.Table, s *nftables.Set) error {
	kind := "set"
	if s.IsMap() {
		kind = "map"
	}
	j.open('{')
	j.key(kind)
	j.open('{')
	j.kstr("family", string(t.Family))
	j.kstr("name", s.Name)
	j.kstr("table", t.Name)
	j.key("type")
	if len(s.KeyType) == 1 {
		j.str(s.KeyType[0])
	} else {
		j.open('[')
		for _, k := range s.KeyType {
			j.str(k)
		}
		j.close(']')
	}
	j.endKey()
	j.knum("handle", int64(s.Handle))
	if s.Comment != "" {
		j.kstr("comment", s.Comment)
	}
	if s.IsMap() {
		j.kstr("map", s.DataType)
	}
	if s.Policy != "" && s.Policy != "performance" {
		j.kstr("policy", s.Policy)
	}
	// nft 1.0.6 reports the kernel's default size of a dynamic set only when the set has
	// no comment (observed on kube-proxy's affinity sets and on hand-made ones).
	size := s.Size
	if size == 0 && hasFlag(s.Flags, "dynamic") && s.Comment == "" {
		size = 65535
	}
	if size > 0 {
		j.knum("size", int64(size))
	}
	var flags []string
	for _, f := range canonicalFlags(s.Flags) {
		// The JSON flag list has no "dynamic" (nft 1.0.6 prints it only in text).
		if f != "dynamic" {
			flags = append(flags, f)
		}
	}
	if len(flags) > 0 {
		j.key("flags")
		j.open('[')
		for _, f := range flags {
			j.str(f)
		}
		j.close(']')
		j.endKey()
	}
	if s.Timeout != "" {
		if secs, ok := parseSeconds(s.Timeout); ok {
			j.knum("timeout", int64(secs))
		}
	}
	if len(s.Elements) > 0 {
		j.key("elem")
		j.open('[')
		for _, e := range SortElements(s) {
			if s.IsMap() {
				j.open('[')
				writeElemKeyJSON(j, s, e)
				v, err := nftables.ParseRule(strings.Join(e.Value, " . "))
				if err != nil || len(v) != 1 {
					return fmt.Errorf("map %s: element value %q", s.Name, e.Value)
				}
				if err := writeStmtJSON(j, t.Family, v[0]); err != nil {
					return err
				}
				j.close(']')
			} else {
				writeElemKeyJSON(j, s, e)
			}
		}
		j.close(']')
		j.endKey()
	}
	j.close('}')
	j.endKey()
	j.close('}')
	return nil
}

func writeElemKeyJSON(j *jw, s *nftables.Set, e *nftables.Element) {
	val := func() {
		if len(e.Key) == 1 {
			writeValueJSON(j, s.KeyType[0], e.Key[0])
			return
		}
		j.open('{')
		j.key("concat")
		j.open('[')
		for i, k := range e.Key {
			typ := ""
			if i < len(s.KeyType) {
				typ = s.KeyType[i]
			}
			writeValueJSON(j, typ, k)
		}
		j.close(']')
		j.endKey()
		j.close('}')
	}
	if e.Comment == "" && e.Timeout == "" {
		val()
		return
	}
	j.open('{')
	j.key("elem")
	j.open('{')
	j.key("val")
	val()
	j.endKey()
	if e.Timeout != "" {
		if secs, ok := parseSeconds(e.Timeout); ok {
			j.knum("timeout", int64(secs))
		}
	}
	if e.Comment != "" {
		j.kstr("comment", e.Comment)
	}
	j.close('}')
	j.endKey()
	j.close('}')
}

// writeValueJSON writes one value of a data type: numbers for ports and marks, a prefix
// object for prefixes, strings otherwise.
func writeValueJSON(j *jw, typ, v string) {
	v = strings.Trim(v, `"`)
	switch typ {
	case "inet_service", "mark", "integer":
		if n, err := strconv.ParseInt(v, 0, 64); err == nil {
			j.num(n)
			return
		}
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		j.open('{')
		j.key("prefix")
		j.open('{')
		j.kstr("addr", p.Addr().String())
		j.knum("len", int64(p.Bits()))
		j.close('}')
		j.endKey()
		j.close('}')
		return
	}
	if lo, hi, ok := strings.Cut(v, "-"); ok && typ != "" && typ != "ifname" {
		j.open('{')
		j.key("range")
		j.open('[')
		writeValueJSON(j, typ, lo)
		writeValueJSON(j, typ, hi)
		j.close(']')
		j.endKey()
		j.close('}')
		return
	}
	j.str(v)
}

// fieldJSON writes the left-hand side of a match for one field.
func fieldJSON(j *jw, f nftables.Field) error {
	s := string(f)
	switch {
	case s == "mark" || s == "meta mark":
		s = "meta mark"
	case s == "iifname" || s == "oifname" || s == "iif" || s == "oif" || s == "l4proto":
		s = "meta " + s
	}
	proto, field, ok := strings.Cut(s, " ")
	if !ok {
		return fmt.Errorf("field %q not expressible in JSON", f)
	}
	j.open('{')
	if proto == "meta" {
		j.key("meta")
		j.open('{')
		j.kstr("key", field)
		j.close('}')
	} else {
		j.key("payload")
		j.open('{')
		j.kstr("protocol", proto)
		j.kstr("field", field)
		j.close('}')
	}
	j.endKey()
	j.close('}')
	return nil
}

func keyJSON(j *jw, key []nftables.Field) error {
	if len(key) == 1 {
		return fieldJSON(j, key[0])
	}
	j.open('{')
	j.key("concat")
	j.open('[')
	for _, f := range key {
		if err := fieldJSON(j, f); err != nil {
			return err
		}
	}
	j.close(']')
	j.endKey()
	j.close('}')
	return nil
}

func verdictJSON(j *jw, fam nftables.Family, v nftables.Verdict) {
	j.open('{')
	switch v.Kind {
	case nftables.VerdictJump, nftables.VerdictGoto:
		j.key(string(v.Kind))
		j.open('{')
		j.kstr("target", v.Chain)
		j.close('}')
	case nftables.VerdictReject:
		j.key("reject")
		j.open('{')
		switch {
		case v.With == "tcp reset":
			j.kstr("type", "tcp reset")
		case v.With == "":
			if fam == nftables.FamilyIP6 {
				j.kstr("type", "icmpv6")
			} else {
				j.kstr("type", "icmp")
			}
			j.kstr("expr", "port-unreachable")
		default:
			w := strings.Fields(v.With)
			j.kstr("type", w[0])
			if len(w) > 2 {
				j.kstr("expr", w[len(w)-1])
			}
		}
		j.close('}')
	default:
		j.key(string(v.Kind))
		j.null()
	}
	j.endKey()
	j.close('}')
}

func writeStmtJSON(j *jw, fam nftables.Family, st nftables.Statement) error {
	switch s := st.(type) {
	case nftables.Verdict:
		verdictJSON(j, fam, s)
	case nftables.Match:
		j.open('{')
		j.key("match")
		j.open('{')
		op := string(s.Op)
		if op == "" {
			op = "=="
		}
		j.kstr("op", op)
		j.key("left")
		if s.Mask != "" {
			mask, _ := strconv.ParseUint(s.Mask, 0, 32)
			j.open('{')
			j.key("&")
			j.open('[')
			if err := keyJSON(j, s.Key); err != nil {
				return err
			}
			j.num(int64(mask))
			j.close(']')
			j.endKey()
			j.close('}')
		} else if err := keyJSON(j, s.Key); err != nil {
			return err
		}
		j.endKey()
		j.key("right")
		typ := ""
		if len(s.Key) == 1 {
			typ = fieldType(s.Key[0])
		}
		switch {
		case s.Val.Set != "":
			j.str("@" + s.Val.Set)
		case s.Mask != "":
			n, _ := strconv.ParseUint(s.Val.String(), 0, 32)
			j.num(int64(n))
		case s.Val.Anon && len(s.Val.Words) > 1:
			j.open('{')
			j.key("set")
			j.open('[')
			ws := append([]string(nil), s.Val.Words...)
			sortValues(typ, ws)
			for _, w := range ws {
				writeValueJSON(j, typ, w)
			}
			j.close(']')
			j.endKey()
			j.close('}')
		default:
			writeValueJSON(j, typ, s.Val.Words[0])
		}
		j.endKey()
		j.close('}')
		j.endKey()
		j.close('}')
	case nftables.Ct:
		op := "in"
		if s.Op == nftables.OpNe {
			op = "!="
		}
		matchJSON(j, op, func() {
			j.wrap("ct", func() { j.open('{'); j.kstr("key", s.Key); j.close('}') })
		}, func() {
			if len(s.Values) == 1 {
				j.str(s.Values[0])
				return
			}
			j.open('[')
			for _, v := range s.Values {
				j.str(v)
			}
			j.close(']')
		})
	case nftables.Fib:
		op := "=="
		if s.Op == nftables.OpNe {
			op = "!="
		}
		matchJSON(j, op, func() {
			j.wrap("fib", func() {
				j.open('{')
				j.kstr("result", "type")
				j.key("flags")
				j.open('[')
				j.str(s.Dir)
				j.close(']')
				j.endKey()
				j.close('}')
			})
		}, func() {
			if len(s.Types) == 1 {
				j.str(s.Types[0])
				return
			}
			j.wrap("set", func() {
				j.open('[')
				for _, t := range s.Types {
					j.str(t)
				}
				j.close(']')
			})
		})
	case nftables.VMap, nftables.Numgen:
		j.open('{')
		j.key("vmap")
		j.open('{')
		j.key("key")
		var entries []nftables.VMapEntry
		typ := ""
		if vm, ok := s.(nftables.VMap); ok {
			if err := keyJSON(j, vm.Key); err != nil {
				return err
			}
			entries = vm.Anon
			if len(vm.Key) == 1 {
				typ = fieldType(vm.Key[0])
			}
			j.endKey()
			if vm.Map != "" {
				j.kstr("data", "@"+vm.Map)
				j.close('}')
				j.endKey()
				j.close('}')
				return nil
			}
		} else {
			ng := s.(nftables.Numgen)
			j.open('{')
			j.key("numgen")
			j.open('{')
			j.kstr("mode", ng.Mode)
			j.knum("mod", int64(ng.Mod))
			j.knum("offset", int64(ng.Offset))
			j.close('}')
			j.endKey()
			j.close('}')
			j.endKey()
			entries = ng.Entries
			typ = "integer"
		}
		j.key("data")
		j.open('{')
		j.key("set")
		j.open('[')
		for _, e := range entries {
			j.open('[')
			writeValueJSON(j, typ, e.Key)
			verdictJSON(j, fam, e.Verdict)
			j.close(']')
		}
		j.close(']')
		j.endKey()
		j.close('}')
		j.endKey()
		j.close('}')
		j.endKey()
		j.close('}')
	case nftables.NAT:
		j.open('{')
		j.key(s.Kind)
		if s.To == "" && len(s.Flags) == 0 {
			j.null()
		} else {
			j.open('{')
			if s.To != "" {
				if ap, err := netip.ParseAddrPort(s.To); err == nil {
					j.kstr("addr", ap.Addr().String())
					j.knum("port", int64(ap.Port()))
				} else if strings.HasPrefix(s.To, ":") {
					n, _ := strconv.Atoi(s.To[1:])
					j.knum("port", int64(n))
				} else {
					j.kstr("addr", strings.Trim(s.To, "[]"))
				}
			}
			if len(s.Flags) == 1 {
				j.kstr("flags", s.Flags[0])
			} else if len(s.Flags) > 1 {
				j.key("flags")
				j.open('[')
				for _, f := range s.Flags {
					j.str(f)
				}
				j.close(']')
				j.endKey()
			}
			j.close('}')
		}
		j.endKey()
		j.close('}')
	case nftables.MarkSet:
		j.open('{')
		j.key("mangle")
		j.open('{')
		j.key("key")
		j.raw(`{"meta": {"key": "mark"}}`)
		j.endKey()
		j.key("value")
		if s.Op == "set" {
			j.num(int64(s.Value))
		} else {
			op := map[string]string{"or": "|", "xor": "^", "and": "&"}[s.Op]
			j.raw(fmt.Sprintf(`{%q: [{"meta": {"key": "mark"}}, %d]}`, op, s.Value))
		}
		j.endKey()
		j.close('}')
		j.endKey()
		j.close('}')
	case nftables.SetUpdate:
		j.open('{')
		j.key("set")
		j.open('{')
		j.kstr("op", s.Verb)
		j.key("elem")
		if err := keyJSON(j, s.Key); err != nil {
			return err
		}
		j.endKey()
		j.kstr("set", "@"+s.Set)
		j.close('}')
		j.endKey()
		j.close('}')
	case nftables.Other:
		switch s.Words[0] {
		case "counter":
			var p, b int64
			for i := 1; i+1 < len(s.Words); i += 2 {
				n, _ := strconv.ParseInt(s.Words[i+1], 10, 64)
				if s.Words[i] == "packets" {
					p = n
				} else {
					b = n
				}
			}
			j.raw(fmt.Sprintf(`{"counter": {"packets": %d, "bytes": %d}}`, p, b))
		case "notrack":
			j.raw(`{"notrack": null}`)
		default:
			return fmt.Errorf("statement %q not expressible in JSON yet", s.String())
		}
	default:
		return fmt.Errorf("statement %q not expressible in JSON yet", st.String())
	}
	return nil
}

// wrap writes {"key": body}.
func (j *jw) wrap(key string, body func()) {
	j.open('{')
	j.key(key)
	body()
	j.endKey()
	j.close('}')
}

// matchJSON writes {"match": {"op": op, "left": left, "right": right}}.
func matchJSON(j *jw, op string, left, right func()) {
	j.wrap("match", func() {
		j.open('{')
		j.kstr("op", op)
		j.key("left")
		left()
		j.endKey()
		j.key("right")
		right()
		j.endKey()
		j.close('}')
	})
}

func sortValues(typ string, ws []string) {
	for i := 1; i < len(ws); i++ {
		for k := i; k > 0 && compareValue(typ, ws[k-1], ws[k]) > 0; k-- {
			ws[k-1], ws[k] = ws[k], ws[k-1]
		}
	}
}
