package nft

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// ParseJSON reads `nft -j list ruleset` output into the model. Rule expressions are turned
// back into nft rule text (the same text `nft list ruleset` prints) and parsed; an
// expression the model does not know is an error naming the rule's handle.
func ParseJSON(r io.Reader, file string) (*nftables.Ruleset, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	rs := &nftables.Ruleset{}
	table := func(fam, name string) *nftables.Table { return rs.Table(nftables.Family(fam), name) }
	for i, obj := range doc.Nftables {
		for kind, raw := range obj {
			var m map[string]any
			d := json.NewDecoder(strings.NewReader(string(raw)))
			d.UseNumber()
			if err := d.Decode(&m); err != nil {
				return nil, fmt.Errorf("%s: object %d (%s): %w", file, i+1, kind, err)
			}
			str := func(k string) string { s, _ := m[k].(string); return s }
			num := func(k string) int {
				n, _ := m[k].(json.Number)
				v, _ := n.Int64()
				return int(v)
			}
			switch kind {
			case "metainfo":
			case "table":
				rs.Tables = append(rs.Tables, &nftables.Table{Family: nftables.Family(str("family")), Name: str("name"), Handle: num("handle")})
			case "set", "map":
				t := table(str("family"), str("table"))
				if t == nil {
					return nil, fmt.Errorf("%s: %s %s of unknown table %s", file, kind, str("name"), str("table"))
				}
				s := &nftables.Set{Name: str("name"), Handle: num("handle"), Comment: str("comment"), Policy: str("policy"), Size: num("size")}
				switch ty := m["type"].(type) {
				case string:
					s.KeyType = []string{ty}
				case []any:
					for _, x := range ty {
						s.KeyType = append(s.KeyType, fmt.Sprint(x))
					}
				}
				if kind == "map" {
					s.DataType = str("map")
				}
				if fl, ok := m["flags"].([]any); ok {
					for _, f := range fl {
						s.Flags = append(s.Flags, fmt.Sprint(f))
					}
				}
				if _, ok := m["timeout"]; ok {
					s.Timeout = strconv.Itoa(num("timeout")) + "s"
					// The JSON drops "dynamic" from a timeout set's flags; kube-proxy's and
					// most such sets are dynamic, and the text form prints the default size.
				}
				if el, ok := m["elem"].([]any); ok {
					for _, e := range el {
						elem, err := jsonElement(s, e)
						if err != nil {
							return nil, fmt.Errorf("%s: %s %s: %w", file, kind, s.Name, err)
						}
						s.Elements = append(s.Elements, elem)
					}
				}
				t.Sets = append(t.Sets, s)
			case "chain":
				t := table(str("family"), str("table"))
				if t == nil {
					return nil, fmt.Errorf("%s: chain %s of unknown table %s", file, str("name"), str("table"))
				}
				c := &nftables.Chain{Name: str("name"), Handle: num("handle"), Type: nftables.ChainType(str("type")),
					Hook: nftables.Hook(str("hook")), Priority: num("prio"), Policy: str("policy"), Device: str("dev")}
				t.Chains = append(t.Chains, c)
			case "rule":
				t := table(str("family"), str("table"))
				if t == nil {
					return nil, fmt.Errorf("%s: rule of unknown table %s", file, str("table"))
				}
				c := t.Chain(str("chain"))
				if c == nil {
					return nil, fmt.Errorf("%s: rule of unknown chain %s", file, str("chain"))
				}
				exprs, _ := m["expr"].([]any)
				var parts []string
				for _, e := range exprs {
					p, err := jsonStmtText(e)
					if err != nil {
						return nil, fmt.Errorf("%s: chain %s rule handle %d: %w", file, c.Name, num("handle"), err)
					}
					parts = append(parts, p)
				}
				c.Rules = append(c.Rules, &nftables.Rule{Text: strings.Join(parts, " "), Comment: str("comment"), Handle: num("handle")})
			default:
				return nil, fmt.Errorf("%s: object %d: %q is not modelled", file, i+1, kind)
			}
		}
	}
	if err := rs.ParseRules(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return rs, nil
}

func jsonElement(s *nftables.Set, e any) (*nftables.Element, error) {
	el := &nftables.Element{}
	key := e
	if s.IsMap() {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("map element %v is not a [key, value] pair", e)
		}
		key = pair[0]
		v, err := jsonStmtText(pair[1])
		if err != nil {
			return nil, err
		}
		el.Value = []string{v}
	}
	if m, ok := key.(map[string]any); ok {
		if inner, ok := m["elem"].(map[string]any); ok {
			if c, ok := inner["comment"].(string); ok {
				el.Comment = c
			}
			if t, ok := inner["timeout"].(json.Number); ok {
				el.Timeout = t.String() + "s"
			}
			key = inner["val"]
		}
	}
	if m, ok := key.(map[string]any); ok {
		if cc, ok := m["concat"].([]any); ok {
			for _, x := range cc {
				v, err := jsonValueText(x)
				if err != nil {
					return nil, err
				}
				el.Key = append(el.Key, v)
			}
			return el, nil
		}
	}
	v, err := jsonValueText(key)
	if err != nil {
		return nil, err
	}
	el.Key = []string{v}
	return el, nil
}

// jsonValueText turns a JSON value (string, number, prefix, range, set) into nft text.
func jsonValueText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case map[string]any:
		if p, ok := x["prefix"].(map[string]any); ok {
			return fmt.Sprintf("%v/%v", p["addr"], p["len"]), nil
		}
		if r, ok := x["range"].([]any); ok && len(r) == 2 {
			return fmt.Sprintf("%v-%v", r[0], r[1]), nil
		}
		if s, ok := x["set"].([]any); ok {
			var parts []string
			for _, e := range s {
				p, err := jsonValueText(e)
				if err != nil {
					return "", err
				}
				parts = append(parts, p)
			}
			return "{ " + strings.Join(parts, ", ") + " }", nil
		}
	}
	return "", fmt.Errorf("value %v is not modelled", v)
}

// jsonFieldText turns a left-hand side (payload, meta, ct, fib, concat, &) into nft text.
func jsonFieldText(v any) (string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", fmt.Errorf("field %v is not modelled", v)
	}
	for k, x := range m {
		inner, _ := x.(map[string]any)
		switch k {
		case "payload":
			return fmt.Sprintf("%v %v", inner["protocol"], inner["field"]), nil
		case "meta":
			key := fmt.Sprint(inner["key"])
			if key == "iifname" || key == "oifname" {
				return key, nil
			}
			return "meta " + key, nil
		case "ct":
			return "ct " + fmt.Sprint(inner["key"]), nil
		case "fib":
			flags, _ := inner["flags"].([]any)
			var fs []string
			for _, f := range flags {
				fs = append(fs, fmt.Sprint(f))
			}
			return "fib " + strings.Join(fs, " . ") + " type", nil
		case "concat":
			list, _ := x.([]any)
			var parts []string
			for _, e := range list {
				p, err := jsonFieldText(e)
				if err != nil {
					return "", err
				}
				parts = append(parts, p)
			}
			return strings.Join(parts, " . "), nil
		case "&":
			list, _ := x.([]any)
			if len(list) != 2 {
				break
			}
			f, err := jsonFieldText(list[0])
			if err != nil {
				return "", err
			}
			n, _ := list[1].(json.Number)
			v, _ := n.Int64()
			return fmt.Sprintf("%s & 0x%08x", f, v), nil
		case "numgen":
			return fmt.Sprintf("numgen %v mod %v", inner["mode"], inner["mod"]) + offsetText(inner["offset"]), nil
		}
	}
	return "", fmt.Errorf("field %v is not modelled", v)
}

func offsetText(v any) string {
	if n, ok := v.(json.Number); ok && n.String() != "0" {
		return " offset " + n.String()
	}
	return ""
}

// jsonStmtText turns one statement object into nft text.
func jsonStmtText(v any) (string, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", fmt.Errorf("statement %v is not modelled", v)
	}
	keys := make([]string, 0, 1)
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	k := keys[0]
	x := m[k]
	inner, _ := x.(map[string]any)
	switch k {
	case "accept", "drop", "return", "continue":
		return k, nil
	case "jump", "goto":
		return fmt.Sprintf("%s %v", k, inner["target"]), nil
	case "reject":
		if inner == nil {
			return "reject", nil
		}
		t := fmt.Sprint(inner["type"])
		if t == "tcp reset" {
			return "reject with tcp reset", nil
		}
		if e, ok := inner["expr"]; ok && fmt.Sprint(e) != "port-unreachable" {
			return fmt.Sprintf("reject with %s type %v", t, e), nil
		}
		return "reject", nil
	case "match":
		op := fmt.Sprint(inner["op"])
		left, err := jsonFieldText(inner["left"])
		if err != nil {
			return "", err
		}
		var right string
		switch rv := inner["right"].(type) {
		case []any:
			var parts []string
			for _, e := range rv {
				parts = append(parts, fmt.Sprint(e))
			}
			right = strings.Join(parts, ",")
		default:
			if right, err = jsonValueText(rv); err != nil {
				return "", err
			}
		}
		if strings.HasPrefix(left, "meta mark") {
			if n, err := strconv.ParseUint(right, 10, 32); err == nil {
				right = fmt.Sprintf("0x%08x", n)
			}
		}
		if (left == "iifname" || left == "oifname") && !strings.HasPrefix(right, "{") {
			right = strconv.Quote(right)
		}
		switch op {
		case "==", "in":
			if strings.Contains(left, " & ") {
				return left + " == " + right, nil
			}
			return left + " " + right, nil
		default:
			return left + " " + op + " " + right, nil
		}
	case "vmap":
		key, err := jsonFieldText(inner["key"])
		if err != nil {
			return "", err
		}
		switch d := inner["data"].(type) {
		case string:
			return key + " vmap " + d, nil
		case map[string]any:
			set, _ := d["set"].([]any)
			var parts []string
			for _, e := range set {
				pair, _ := e.([]any)
				if len(pair) != 2 {
					return "", fmt.Errorf("vmap entry %v", e)
				}
				kt, err := jsonValueText(pair[0])
				if err != nil {
					return "", err
				}
				vt, err := jsonStmtText(pair[1])
				if err != nil {
					return "", err
				}
				parts = append(parts, kt+" : "+vt)
			}
			return key + " vmap { " + strings.Join(parts, ", ") + " }", nil
		}
	case "dnat", "snat", "masquerade", "redirect":
		out := k
		if inner != nil {
			if a, ok := inner["addr"]; ok {
				out += " to " + fmt.Sprint(a)
				if strings.Contains(fmt.Sprint(a), ":") {
					out = k + " to [" + fmt.Sprint(a) + "]"
				}
				if p, ok := inner["port"]; ok {
					out += ":" + fmt.Sprint(p)
				}
			} else if p, ok := inner["port"]; ok {
				out += " to :" + fmt.Sprint(p)
			}
			switch f := inner["flags"].(type) {
			case string:
				out += " " + f
			case []any:
				var fs []string
				for _, x := range f {
					fs = append(fs, fmt.Sprint(x))
				}
				out += " " + strings.Join(fs, ",")
			}
		}
		return out, nil
	case "mangle":
		key, err := jsonFieldText(inner["key"])
		if err != nil {
			return "", err
		}
		switch val := inner["value"].(type) {
		case json.Number:
			n, _ := val.Int64()
			return fmt.Sprintf("%s set 0x%08x", key, n), nil
		case map[string]any:
			for op, args := range val {
				list, _ := args.([]any)
				if len(list) == 2 {
					n, _ := list[1].(json.Number)
					v, _ := n.Int64()
					return fmt.Sprintf("%s set %s %s 0x%08x", key, key, op, v), nil
				}
			}
		}
	case "set":
		elem, err := jsonFieldText(inner["elem"])
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%v %v { %s }", inner["op"], inner["set"], elem), nil
	case "counter":
		return fmt.Sprintf("counter packets %v bytes %v", inner["packets"], inner["bytes"]), nil
	case "notrack":
		return "notrack", nil
	}
	return "", fmt.Errorf("statement %q is not modelled", k)
}
