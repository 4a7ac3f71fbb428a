package nft

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// ListRuleText returns a rule as `nft list ruleset` prints it, given the text it was
// written with (knftables' syntax). Text the statement parser does not understand is
// returned unchanged.
func ListRuleText(text string) string {
	if !needsNormalizing(text) {
		return text
	}
	stmts, err := nftables.ParseRule(text)
	if err != nil || len(stmts) == 0 {
		return text
	}
	parts := make([]string, 0, len(stmts))
	for _, st := range stmts {
		parts = append(parts, listStatement(st))
	}
	return strings.Join(parts, " ")
}

func listField(f nftables.Field) string {
	switch f {
	case "mark":
		return "meta mark"
	case "l4proto":
		return "meta l4proto"
	case "meta iifname":
		return "iifname"
	case "meta oifname":
		return "oifname"
	}
	return string(f)
}

func listKey(k []nftables.Field) string {
	s := make([]string, len(k))
	for i, f := range k {
		s[i] = listField(f)
	}
	return strings.Join(s, " . ")
}

func isMarkField(f nftables.Field) bool { return f == "mark" || f == "meta mark" }

func hex8(s string) string {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return s
	}
	return fmt.Sprintf("0x%08x", v)
}

// fieldType is the nft data type of a field, for ordering anonymous set members.
func fieldType(f nftables.Field) string {
	switch {
	case strings.HasPrefix(string(f), "ip6 ") && strings.HasSuffix(string(f), "addr"):
		return "ipv6_addr"
	case strings.HasSuffix(string(f), "addr"):
		return "ipv4_addr"
	case strings.HasSuffix(string(f), "port"):
		return "inet_service"
	case strings.HasSuffix(string(f), "l4proto"):
		return "inet_proto"
	case isMarkField(f):
		return "mark"
	}
	return ""
}

func listValue(key []nftables.Field, v nftables.Value) string {
	quote := len(key) == 1 && (strings.HasSuffix(string(key[0]), "ifname"))
	word := func(w string) string {
		if len(key) == 1 && isMarkField(key[0]) {
			return hex8(w)
		}
		if quote && !strings.HasPrefix(w, `"`) {
			return strconv.Quote(w)
		}
		return w
	}
	switch {
	case v.Set != "":
		return "@" + v.Set
	case v.Anon && len(v.Words) == 1:
		return word(v.Words[0])
	case v.Anon:
		ws := append([]string(nil), v.Words...)
		if len(key) == 1 {
			typ := fieldType(key[0])
			sort.SliceStable(ws, func(i, j int) bool { return compareValue(typ, ws[i], ws[j]) < 0 })
		}
		for i := range ws {
			ws[i] = word(ws[i])
		}
		return "{ " + strings.Join(ws, ", ") + " }"
	default:
		ws := make([]string, len(v.Words))
		for i := range v.Words {
			ws[i] = word(v.Words[i])
		}
		return strings.Join(ws, " ")
	}
}

func listVerdict(v nftables.Verdict) string { return v.String() }

func listEntries(es []nftables.VMapEntry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Key + " : " + listVerdict(e.Verdict)
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func listStatement(st nftables.Statement) string {
	switch s := st.(type) {
	case nftables.Match:
		var b strings.Builder
		b.WriteString(listKey(s.Key))
		if s.Mask != "" {
			b.WriteString(" & " + hex8(s.Mask))
			op := s.Op
			if op == "" {
				op = nftables.OpEq
			}
			b.WriteString(" " + string(op) + " " + hex8(s.Val.String()))
			return b.String()
		}
		if s.Op != nftables.OpEq && s.Op != "" {
			b.WriteString(" " + string(s.Op))
		}
		b.WriteString(" " + listValue(s.Key, s.Val))
		return b.String()
	case nftables.VMap:
		if s.Map != "" {
			return listKey(s.Key) + " vmap @" + s.Map
		}
		return listKey(s.Key) + " vmap " + listEntries(s.Anon)
	case nftables.Numgen:
		out := fmt.Sprintf("numgen %s mod %d", s.Mode, s.Mod)
		if s.Offset != 0 {
			out += fmt.Sprintf(" offset %d", s.Offset)
		}
		return out + " vmap " + listEntries(s.Entries)
	case nftables.MarkSet:
		switch s.Op {
		case "or":
			return fmt.Sprintf("meta mark set meta mark | 0x%08x", s.Value)
		case "xor":
			return fmt.Sprintf("meta mark set meta mark ^ 0x%08x", s.Value)
		case "and":
			return fmt.Sprintf("meta mark set meta mark & 0x%08x", s.Value)
		}
		return fmt.Sprintf("meta mark set 0x%08x", s.Value)
	case nftables.SetUpdate:
		return s.Verb + " @" + s.Set + " { " + listKey(s.Key) + " }"
	}
	return st.String()
}

// needsNormalizing reports whether nft would print text differently from how it was
// written: anonymous sets and maps (spacing, ordering, one-element simplification), marks
// (hex width, operators), interface names (quoting). Most kube-proxy rules need nothing,
// and skipping the parse keeps printing 10,000 Services fast.
func needsNormalizing(text string) bool {
	if strings.IndexByte(text, '{') >= 0 {
		return true
	}
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], ' ')
		var w string
		if j < 0 {
			w = text[i:]
			i = len(text)
		} else {
			w = text[i : i+j]
			i += j + 1
		}
		switch w {
		case "mark", "and", "or", "xor", "iifname", "oifname", "iif", "oif", "meta":
			return true
		}
	}
	return false
}
