package iproute

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/route"
)

// Problem is something a parser did not understand, with its position.
type Problem struct {
	File string
	Line int
	Text string
	Msg  string
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s:%d: %s: %q", p.File, p.Line, p.Msg, p.Text)
}

// Problems is a list of Problem; it is an error when non-empty.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Err returns ps as an error, or nil when empty.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

type parser struct {
	file  string
	s     *route.Stack
	probs Problems
	line  int
	text  string
}

func (p *parser) problem(format string, a ...any) {
	p.probs = append(p.probs, Problem{File: p.file, Line: p.line, Text: p.text, Msg: fmt.Sprintf(format, a...)})
}

// num parses the decimal value v of tok; a value that is not a number is reported as a problem
// and read as 0. An empty v (a missing value, already reported) is 0 without a second report.
func (p *parser) num(tok, v string) int {
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.problem("%s: bad number %q", tok, v)
	}
	return n
}

// ip parses the address value v of tok like num does numbers.
func (p *parser) ip(tok, v string) netip.Addr {
	if v == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		p.problem("%s: bad address %q", tok, v)
	}
	return a
}

// knownTables are the rt_tables entries Kubernetes CNIs write (kube-router pkg/routes/pbr.go).
var knownTables = map[string]route.TableID{"kube-router": 77, "kube-router-dsr": 78, "external_ip": 79}

func (p *parser) table(tok string) route.TableID {
	switch tok {
	case "main":
		return route.TableMain
	case "local":
		return route.TableLocal
	case "default":
		return route.TableDefault
	case "unspec":
		return route.TableUnspec
	}
	if n, err := strconv.ParseUint(tok, 10, 32); err == nil {
		return route.TableID(n)
	}
	for id, n := range p.s.TableNames {
		if n == tok {
			return id
		}
	}
	id, ok := knownTables[tok]
	if !ok {
		p.problem("unknown table name %q (not in rt_tables); numbered from 10000", tok)
		id = 10000
		for {
			if _, used := p.s.TableNames[id]; !used {
				break
			}
			id++
		}
	}
	if p.s.TableNames == nil {
		p.s.TableNames = map[route.TableID]string{}
	}
	p.s.TableNames[id] = tok
	return id
}

func parsePrefix(tok string) (netip.Prefix, error) {
	if tok == "default" {
		return netip.Prefix{}, nil // caller fixes family
	}
	if strings.Contains(tok, "/") {
		return netip.ParsePrefix(tok)
	}
	a, err := netip.ParseAddr(tok)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// lines splits data into lines, undoing `-o` (a backslash stands for a newline) when
// oneline is set; each returned line keeps its source line number.
func lines(data []byte) (out []string) {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ParseRoutes reads `ip [-d] [-4|-6] route [show table T]` output into s (appending in
// order). Routes without a `table` token go to o.Table (main when empty or "all"). Fields
// are split on runs of blanks, so old iproute2's double spaces and tabs are accepted.
func ParseRoutes(s *route.Stack, file string, data []byte, o Options) Problems {
	p := &parser{file: file, s: s}
	def := route.TableMain
	if o.Table != "" && o.Table != "all" {
		def = p.table(o.Table)
	}
	var last *route.Route
	for i, ln := range lines(data) {
		p.line, p.text = i+1, ln
		f := strings.Fields(ln)
		if len(f) == 0 {
			continue
		}
		if f[0] == "nexthop" {
			if last == nil {
				p.problem("nexthop without a route")
				continue
			}
			last.MultiPath = append(last.MultiPath, p.nexthop(f[1:]))
			continue
		}
		r := p.route(f, def)
		if r == nil {
			last = nil
			continue
		}
		s.Routes = append(s.Routes, r)
		last = r
	}
	s.Reindex()
	return p.probs
}

func (p *parser) nexthop(f []string) route.NextHop {
	var h route.NextHop
	for i := 0; i < len(f); i++ {
		arg := func() string {
			if i+1 < len(f) {
				i++
				return f[i]
			}
			p.problem("%s without a value", f[i])
			return ""
		}
		switch f[i] {
		case "via":
			v := arg()
			if v == "inet" || v == "inet6" {
				v = arg()
			}
			a, err := netip.ParseAddr(v)
			if err != nil {
				p.problem("bad nexthop gateway %q", v)
			}
			h.Gw = a
		case "dev":
			h.Dev = arg()
		case "weight":
			h.Weight = p.num("weight", arg())
		default:
			if fl, ok := route.ParseRouteFlag(f[i]); ok {
				h.Flags |= fl
			} else {
				p.problem("unknown nexthop token %q", f[i])
			}
		}
	}
	return h
}

func (p *parser) route(f []string, def route.TableID) *route.Route {
	r := &route.Route{Table: def, Type: route.TypeUnicast, Protocol: route.ProtoBoot}
	i := 0
	if f[0] == "Deleted" {
		i++
	}
	if t, ok := route.ParseRouteType(f[i]); ok && i+1 < len(f) {
		r.Type = t
		i++
	}
	if i >= len(f) {
		p.problem("route without destination")
		return nil
	}
	dst, err := parsePrefix(f[i])
	if err != nil {
		p.problem("bad route destination %q", f[i])
		return nil
	}
	isDefault := f[i] == "default"
	i++
	scopeSet := false
	for ; i < len(f); i++ {
		tok := f[i]
		arg := func() string {
			if i+1 < len(f) {
				i++
				return f[i]
			}
			p.problem("%s without a value", tok)
			return ""
		}
		switch tok {
		case "via":
			v := arg()
			if v == "inet" || v == "inet6" {
				v = arg()
			}
			a, err := netip.ParseAddr(v)
			if err != nil {
				p.problem("bad gateway %q", v)
			}
			r.Gw = a
		case "dev":
			r.Dev = arg()
		case "table":
			r.Table = p.table(arg())
		case "proto":
			pr, err := route.ParseProtocol(arg())
			if err != nil {
				p.problem("%v", err)
			}
			r.Protocol = pr
		case "scope":
			sc, err := route.ParseScope(arg())
			if err != nil {
				p.problem("%v", err)
			}
			r.Scope, scopeSet = sc, true
		case "src":
			a, err := netip.ParseAddr(arg())
			if err != nil {
				p.problem("bad src %q", f[i])
			}
			r.Src = a
		case "metric":
			r.Metric = p.num(tok, arg())
		case "mtu":
			v := arg()
			if v == "lock" {
				p.problem("locked mtu not modelled")
				v = arg()
			}
			r.MTU = p.num(tok, v)
		case "advmss":
			r.AdvMSS = p.num(tok, arg())
		case "error":
			r.Error = p.num(tok, arg())
		case "pref":
			r.Pref = arg()
		case "expires", "hoplimit", "rtt", "rttvar", "initcwnd", "initrwnd", "mark", "uid", "realm", "realms", "tos", "nhid", "from", "iif", "cwnd", "window", "ssthresh", "quickack", "features":
			p.problem("route attribute %q not modelled", tok)
			arg()
		case "cache":
		default:
			if fl, ok := route.ParseRouteFlag(tok); ok {
				r.Flags |= fl
				continue
			}
			p.problem("unknown route token %q", tok)
		}
	}
	if isDefault {
		if r.Gw.Is6() || strings.Contains(r.Src.String(), ":") {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
	}
	r.Dst = dst
	_ = scopeSet
	return r
}

// ParseRules reads `ip rule` output into s, replacing its rules.
func ParseRules(s *route.Stack, file string, data []byte) Problems {
	p := &parser{file: file, s: s}
	var rules []*route.Rule
	for i, ln := range lines(data) {
		p.line, p.text = i+1, ln
		if strings.TrimSpace(ln) == "" {
			continue
		}
		prio, rest, ok := strings.Cut(ln, ":")
		n, err := strconv.Atoi(strings.TrimSpace(prio))
		if !ok || err != nil {
			p.problem("not a rule line (want PRIO:\\tSELECTOR ACTION)")
			continue
		}
		r := &route.Rule{Priority: n}
		f := strings.Fields(rest)
		for j := 0; j < len(f); j++ {
			tok := f[j]
			arg := func() string {
				if j+1 < len(f) {
					j++
					return f[j]
				}
				p.problem("%s without a value", tok)
				return ""
			}
			switch tok {
			case "not":
				r.Not = true
			case "from", "to":
				v := arg()
				if v == "all" {
					continue
				}
				pf, err := parsePrefix(v)
				if err != nil {
					p.problem("bad %s selector %q", tok, v)
				}
				if tok == "from" {
					r.Src = pf
				} else {
					r.Dst = pf
				}
			case "fwmark":
				v := arg()
				m, mask, hasMask := strings.Cut(v, "/")
				mv, err1 := strconv.ParseUint(m, 0, 32)
				mk := uint64(0xffffffff)
				var err2 error
				if hasMask {
					mk, err2 = strconv.ParseUint(mask, 0, 32)
				}
				if err1 != nil || err2 != nil {
					p.problem("bad fwmark %q", v)
				}
				r.HasMark, r.Mark, r.Mask = true, uint32(mv), uint32(mk)
			case "iif":
				r.IIF = arg()
			case "oif":
				r.OIF = arg()
			case "lookup", "table":
				r.Action, r.Table = route.ActionLookup, p.table(arg())
			case "goto":
				r.Action = route.ActionGoto
				r.Goto = p.num(tok, arg())
			case "blackhole", "unreachable", "prohibit", "nop":
				r.Action = route.RuleAction(tok)
			case "[detached]", "[unresolved]":
			default:
				p.problem("unknown rule token %q", tok)
			}
		}
		rules = append(rules, r)
	}
	s.Rules = rules
	return p.probs
}

// ParseNeighs reads `ip neigh` output into s.
func ParseNeighs(s *route.Stack, file string, data []byte) Problems {
	p := &parser{file: file, s: s}
	for i, ln := range lines(data) {
		p.line, p.text = i+1, ln
		f := strings.Fields(ln)
		if len(f) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil {
			p.problem("not a neighbour line: bad address %q", f[0])
			continue
		}
		n := &route.Neigh{IP: ip}
		for j := 1; j < len(f); j++ {
			tok := f[j]
			switch {
			case tok == "dev" && j+1 < len(f):
				j++
				n.Dev = f[j]
			case tok == "lladdr" && j+1 < len(f):
				j++
				m, err := net.ParseMAC(f[j])
				if err != nil {
					p.problem("bad lladdr %q", f[j])
				}
				n.LLAddr = m
			case tok == "router":
				n.Router = true
			case tok == "proxy":
				n.Proxy = true
			case tok == "extern_learn":
				n.ExternLearn = true
			case isNeighState(tok):
				n.State = route.NeighState(tok)
			default:
				p.problem("unknown neighbour token %q", tok)
			}
		}
		s.Neighs = append(s.Neighs, n)
	}
	return p.probs
}

func isNeighState(s string) bool {
	switch route.NeighState(s) {
	case route.NeighIncomplete, route.NeighReachable, route.NeighStale, route.NeighDelay, route.NeighProbe,
		route.NeighFailed, route.NeighNoARP, route.NeighPermanent, route.NeighNone:
		return true
	}
	return false
}

// ParseFDB reads `bridge fdb show` output into s; dev names the device when the dump was
// filtered with `dev X` (the lines then carry no `dev`).
func ParseFDB(s *route.Stack, file string, data []byte, dev string) Problems {
	p := &parser{file: file, s: s}
	for i, ln := range lines(data) {
		p.line, p.text = i+1, ln
		f := strings.Fields(ln)
		if len(f) == 0 {
			continue
		}
		m, err := net.ParseMAC(f[0])
		if err != nil {
			p.problem("not an fdb line: bad MAC %q", f[0])
			continue
		}
		e := &route.FDB{MAC: m, Dev: dev}
		for j := 1; j < len(f); j++ {
			tok := f[j]
			arg := func() string {
				if j+1 < len(f) {
					j++
					return f[j]
				}
				p.problem("%s without a value", tok)
				return ""
			}
			switch tok {
			case "dev":
				e.Dev = arg()
			case "vlan":
				e.VLAN = p.num(tok, arg())
			case "dst":
				a, err := netip.ParseAddr(arg())
				if err != nil {
					p.problem("bad fdb dst %q", f[j])
				}
				e.Dst = a
			case "self":
				e.Self = true
			case "master":
				e.Master = arg()
			case "extern_learn":
				e.ExternLearn = true
			case "permanent", "static", "stale":
				e.State = route.FDBState(tok)
			default:
				p.problem("unknown fdb token %q", tok)
			}
		}
		s.FDB = append(s.FDB, e)
	}
	return p.probs
}
