package nft

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// Diagnostic is something the parser did not understand and skipped.
type Diagnostic struct {
	File    string
	Line    int
	Message string
}

func (d Diagnostic) String() string { return fmt.Sprintf("%s:%d: %s", d.File, d.Line, d.Message) }

// ParseError is a malformed `nft list ruleset` input.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

var (
	reTable   = regexp.MustCompile(`^table (ip|ip6|inet|arp|bridge|netdev) (\S+) \{$`)
	reObject  = regexp.MustCompile(`^(set|map|chain|flowtable|counter|quota|limit|ct helper|ct timeout|ct expectation|synproxy|secmark) (\S+) \{$`)
	reBase    = regexp.MustCompile(`^type (\S+) hook (\S+)(?: device "?([^" ]+)"?)? priority (.+?); policy (accept|drop);$`)
	rePrioOff = regexp.MustCompile(`^([a-z]+) ([+-]) (\d+)$`)
)

// Parse reads `nft list ruleset` output. Statements inside rules are not parsed here
// (Ruleset.ParseRules does that); objects the model does not hold (flowtables, counters,
// quotas, ct helpers) are skipped with a diagnostic.
func Parse(r io.Reader, file string) (*nftables.Ruleset, []Diagnostic, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	rs := &nftables.Ruleset{}
	var diags []Diagnostic
	var (
		table   *nftables.Table
		chain   *nftables.Chain
		set     *nftables.Set
		skip    int // depth of a skipped block
		lineNo  int
		elemBuf string
		inElems bool
		elemAt  int
	)
	errf := func(format string, a ...any) error {
		return &ParseError{File: file, Line: lineNo, Msg: fmt.Sprintf(format, a...)}
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if inElems {
			elemBuf += " " + line
			if strings.HasSuffix(line, "}") {
				inElems = false
				if err := parseElements(set, elemBuf); err != nil {
					return nil, diags, &ParseError{File: file, Line: elemAt, Msg: err.Error()}
				}
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if skip > 0 {
			skip += strings.Count(line, "{") - strings.Count(line, "}")
			continue
		}
		switch {
		case table == nil:
			m := reTable.FindStringSubmatch(line)
			if m == nil {
				return nil, diags, errf("expected \"table FAMILY NAME {\", found %q", line)
			}
			table = &nftables.Table{Family: nftables.Family(m[1]), Name: m[2]}
			rs.Tables = append(rs.Tables, table)
		case set != nil:
			switch {
			case line == "}":
				set = nil
			case strings.HasPrefix(line, "type ") || strings.HasPrefix(line, "typeof "):
				typ := strings.TrimPrefix(strings.TrimPrefix(line, "type "), "typeof ")
				key, data, isMap := strings.Cut(typ, " : ")
				set.KeyType = strings.Split(key, " . ")
				if isMap {
					set.DataType = data
				}
			case strings.HasPrefix(line, "size "):
				n, err := strconv.Atoi(strings.TrimPrefix(line, "size "))
				if err != nil {
					return nil, diags, errf("bad size %q", line)
				}
				set.Size = n
			case strings.HasPrefix(line, "flags "):
				set.Flags = strings.Split(strings.TrimPrefix(line, "flags "), ",")
			case strings.HasPrefix(line, "timeout "):
				set.Timeout = strings.TrimPrefix(line, "timeout ")
			case strings.HasPrefix(line, "policy "):
				set.Policy = strings.TrimPrefix(line, "policy ")
			case strings.HasPrefix(line, "comment "):
				c, err := strconv.Unquote(strings.TrimPrefix(line, "comment "))
				if err != nil {
					return nil, diags, errf("bad comment %q", line)
				}
				set.Comment = c
			case strings.HasPrefix(line, "elements = {"):
				elemBuf = strings.TrimPrefix(line, "elements = ")
				elemAt = lineNo
				if strings.HasSuffix(line, "}") {
					if err := parseElements(set, elemBuf); err != nil {
						return nil, diags, errf("%v", err)
					}
				} else {
					inElems = true
				}
			default:
				diags = append(diags, Diagnostic{file, lineNo, fmt.Sprintf("set %s: unknown property %q kept out of the model", set.Name, line)})
			}
		case chain != nil:
			switch {
			case line == "}":
				chain = nil
			case strings.HasPrefix(line, "comment ") && len(chain.Rules) == 0 && !strings.Contains(line[8:], "\" "):
				c, err := strconv.Unquote(strings.TrimPrefix(line, "comment "))
				if err != nil {
					return nil, diags, errf("bad comment %q", line)
				}
				chain.Comment = c
			case strings.HasPrefix(line, "type ") && strings.Contains(line, " hook "):
				m := reBase.FindStringSubmatch(line)
				if m == nil {
					return nil, diags, errf("bad base chain declaration %q", line)
				}
				chain.Type = nftables.ChainType(m[1])
				chain.Hook = nftables.Hook(m[2])
				chain.Device = m[3]
				p, err := parsePriority(table.Family, m[4])
				if err != nil {
					return nil, diags, errf("%v", err)
				}
				chain.Priority = p
				chain.Policy = m[5]
			default:
				text, comment := splitComment(line)
				chain.Rules = append(chain.Rules, &nftables.Rule{Text: text, Comment: comment})
			}
		default:
			switch {
			case line == "}":
				table = nil
			case strings.HasPrefix(line, "comment "):
				c, err := strconv.Unquote(strings.TrimPrefix(line, "comment "))
				if err != nil {
					return nil, diags, errf("bad comment %q", line)
				}
				table.Comment = c
			case strings.HasPrefix(line, "flags "):
				table.Flags = strings.Split(strings.TrimPrefix(line, "flags "), ",")
			default:
				m := reObject.FindStringSubmatch(line)
				if m == nil {
					return nil, diags, errf("unexpected %q in table %s %s", line, table.Family, table.Name)
				}
				switch m[1] {
				case "set", "map":
					set = &nftables.Set{Name: m[2]}
					table.Sets = append(table.Sets, set)
				case "chain":
					chain = &nftables.Chain{Name: m[2]}
					table.Chains = append(table.Chains, chain)
				default:
					diags = append(diags, Diagnostic{file, lineNo, fmt.Sprintf("%s %s is not modelled; skipped", m[1], m[2])})
					skip = 1
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, diags, fmt.Errorf("%s: %w", file, err)
	}
	if table != nil || inElems {
		return nil, diags, errf("unexpected end of input (unclosed block)")
	}
	return rs, diags, nil
}

func parsePriority(fam nftables.Family, s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	name, off := s, 0
	if m := rePrioOff.FindStringSubmatch(s); m != nil {
		name = m[1]
		off, _ = strconv.Atoi(m[3])
		if m[2] == "-" {
			off = -off
		}
	}
	for _, sp := range stdPriorities {
		if sp.name == name {
			return sp.value + off, nil
		}
	}
	return 0, fmt.Errorf("unknown priority %q", s)
}

// splitComment separates a trailing `comment "..."` from a rule.
func splitComment(line string) (string, string) {
	if !strings.HasSuffix(line, `"`) {
		return line, ""
	}
	i := strings.LastIndex(line, ` comment "`)
	if i < 0 {
		return line, ""
	}
	c, err := strconv.Unquote(line[i+len(" comment "):])
	if err != nil {
		return line, ""
	}
	return line[:i], c
}

// parseElements parses `{ a, b : v, c comment "x" : v }`.
func parseElements(s *nftables.Set, text string) error {
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "{") || !strings.HasSuffix(text, "}") {
		return fmt.Errorf("set %s: bad elements %q", s.Name, text)
	}
	body := strings.TrimSpace(text[1 : len(text)-1])
	for _, part := range splitTopLevel(body) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		e := &nftables.Element{}
		keyPart, valPart, hasVal := cutOutsideQuotes(part, " : ")
		if hasVal {
			e.Value = strings.Split(strings.TrimSpace(valPart), " . ")
		}
		keyPart = strings.TrimSpace(keyPart)
		if i := strings.Index(keyPart, ` comment "`); i >= 0 {
			c, err := strconv.Unquote(keyPart[i+len(" comment "):])
			if err != nil {
				return fmt.Errorf("set %s: bad element comment in %q", s.Name, part)
			}
			e.Comment = c
			keyPart = keyPart[:i]
		}
		if i := strings.Index(keyPart, " timeout "); i >= 0 {
			rest := strings.Fields(keyPart[i+len(" timeout "):])
			if len(rest) > 0 {
				e.Timeout = rest[0]
			}
			keyPart = keyPart[:i]
		}
		if i := strings.Index(keyPart, " expires "); i >= 0 {
			keyPart = keyPart[:i]
		}
		e.Key = strings.Split(keyPart, " . ")
		s.Elements = append(s.Elements, e)
	}
	return nil
}

func splitTopLevel(s string) []string {
	var out []string
	depth, inQ, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			inQ = !inQ
		case inQ:
		case c == '{':
			depth++
		case c == '}':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func cutOutsideQuotes(s, sep string) (string, string, bool) {
	inQ := false
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i] == '"' {
			inQ = !inQ
		}
		if !inQ && s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}
