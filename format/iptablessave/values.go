package iptablessave

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/netfilter"
)

// parseAddrPrefix parses an `-s`/`-d` value: ADDR or ADDR/LEN or ADDR/DOTTEDMASK (contiguous
// only). The result is masked, as iptables stores it.
func parseAddrPrefix(s string, fam netfilter.Family) (netip.Prefix, error) {
	addrPart, maskPart, hasMask := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrPart)
	if err != nil {
		if fam == netfilter.IPv6 {
			return netip.Prefix{}, fmt.Errorf("host/network `%s' not found", addrPart)
		}
		return netip.Prefix{}, fmt.Errorf("host/network `%s' not found", addrPart)
	}
	a = a.Unmap()
	if (fam == netfilter.IPv6) != a.Is6() {
		return netip.Prefix{}, fmt.Errorf("host/network `%s' not found", addrPart)
	}
	bits := a.BitLen()
	if hasMask {
		if n, err := strconv.Atoi(maskPart); err == nil {
			if n < 0 || n > a.BitLen() {
				return netip.Prefix{}, fmt.Errorf("invalid mask `%s' specified", maskPart)
			}
			bits = n
		} else if m, err := netip.ParseAddr(maskPart); err == nil && m.BitLen() == a.BitLen() {
			n, ok := maskBits(m)
			if !ok {
				return netip.Prefix{}, fmt.Errorf("non-contiguous mask `%s' is not supported", maskPart)
			}
			bits = n
		} else {
			return netip.Prefix{}, fmt.Errorf("invalid mask `%s' specified", maskPart)
		}
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// maskBits returns the prefix length of a contiguous netmask.
func maskBits(m netip.Addr) (int, bool) {
	b := m.AsSlice()
	n := 0
	seenZero := false
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) != 0 {
				if seenZero {
					return 0, false
				}
				n++
			} else {
				seenZero = true
			}
		}
	}
	return n, true
}

// parseUint parses a decimal number up to max.
func parseUint(s string, max uint64) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, fmt.Errorf("invalid value `%s'", s)
	}
	return v, nil
}

// parseUint32Any parses a number in C strtoul base-0 syntax (0x.. hex, 0.. octal, decimal).
func parseUint32Any(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("bad value `%s'", s)
	}
	return uint32(v), nil
}

// parseMarkMask parses VALUE[/MASK]; the mask defaults to 0xffffffff.
func parseMarkMask(s string) (uint32, uint32, bool, error) {
	v, m, hasMask := strings.Cut(s, "/")
	val, err := parseUint32Any(v)
	if err != nil {
		return 0, 0, false, err
	}
	mask := uint32(0xffffffff)
	if hasMask {
		if mask, err = parseUint32Any(m); err != nil {
			return 0, 0, false, err
		}
	}
	return val, mask, hasMask, nil
}

// parsePort parses one port number.
func parsePort(s string) (uint16, error) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("invalid port/service `%s' specified", s)
	}
	return uint16(v), nil
}

// parsePortRange parses P, P:Q, P: (to 65535) or :Q (from 0), as libxt_tcp does.
func parsePortRange(s string) (netfilter.PortRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	if !isRange {
		p, err := parsePort(s)
		return netfilter.PortRange{Lo: p, Hi: p}, err
	}
	r := netfilter.PortRange{Lo: 0, Hi: 65535}
	var err error
	if lo != "" {
		if r.Lo, err = parsePort(lo); err != nil {
			return r, err
		}
	}
	if hi != "" {
		if r.Hi, err = parsePort(hi); err != nil {
			return r, err
		}
	}
	if r.Lo > r.Hi {
		r.Lo, r.Hi = r.Hi, r.Lo
	}
	return r, nil
}

// parseProbability converts a --probability value to the kernel's u32, lround(0x80000000*p).
func parseProbability(s string) (uint32, error) {
	p, err := strconv.ParseFloat(s, 64)
	if err != nil || p < 0 || p > 1 || math.IsNaN(p) {
		return 0, fmt.Errorf("--probability must be between 0 and 1, got `%s'", s)
	}
	return uint32(math.Round(0x80000000 * p)), nil
}

// limitScale is XT_LIMIT_SCALE.
const limitScale = 10000

// parseRate parses a --limit rate as libxt_limit's parse_rate does (N[/second|minute|hour|day],
// any prefix of the unit, case-insensitive) into the kernel period.
func parseRate(s string) (uint32, error) {
	num, unit, hasUnit := strings.Cut(s, "/")
	mult := uint32(1)
	if hasUnit {
		u := strings.ToLower(unit)
		switch {
		case u == "":
			return 0, fmt.Errorf("bad rate \"%s\"", s)
		case strings.HasPrefix("second", u):
			mult = 1
		case strings.HasPrefix("minute", u):
			mult = 60
		case strings.HasPrefix("hour", u):
			mult = 60 * 60
		case strings.HasPrefix("day", u):
			mult = 24 * 60 * 60
		default:
			return 0, fmt.Errorf("bad rate \"%s\"", s)
		}
	}
	r, err := strconv.ParseUint(num, 10, 32)
	if err != nil || r == 0 {
		return 0, fmt.Errorf("bad rate \"%s\"", s)
	}
	v := uint32(limitScale) * mult / uint32(r)
	if v == 0 {
		return 0, fmt.Errorf("rate too fast \"%s\"", s)
	}
	return v, nil
}

// appendRate appends " N/unit" as libxt_limit's print_rate does.
func appendRate(b []byte, period uint32) []byte {
	rates := [...]struct {
		name string
		mult uint32
	}{{"day", limitScale * 24 * 60 * 60}, {"hour", limitScale * 60 * 60}, {"min", limitScale * 60}, {"sec", limitScale}}
	if period == 0 {
		return append(b, " inf"...)
	}
	i := 1
	for ; i < len(rates); i++ {
		if period > rates[i].mult || rates[i].mult/period < rates[i].mult%period {
			break
		}
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(rates[i-1].mult/period), 10)
	b = append(b, '/')
	return append(b, rates[i-1].name...)
}

// parseNATRange parses ADDR[-ADDR][:PORT[-PORT]] (IPv6: [ADDR[-ADDR]]:PORT[-PORT] or a bare
// address), as libxt_NAT's parse_to does.
func parseNATRange(s string, fam netfilter.Family) (netfilter.NATRange, error) {
	var r netfilter.NATRange
	addrs, ports := s, ""
	if fam == netfilter.IPv6 {
		if strings.HasPrefix(s, "[") {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return r, fmt.Errorf("invalid address:port specification `%s'", s)
			}
			addrs = s[1:end]
			rest := s[end+1:]
			if rest != "" {
				if rest[0] != ':' {
					return r, fmt.Errorf("invalid address:port specification `%s'", s)
				}
				ports = rest[1:]
			}
		} else if strings.HasPrefix(s, ":") {
			addrs, ports = "", s[1:]
		}
	} else if a, p, ok := strings.Cut(s, ":"); ok {
		addrs, ports = a, p
	}
	if addrs != "" {
		lo, hi, isRange := strings.Cut(addrs, "-")
		a, err := netip.ParseAddr(lo)
		if err != nil || a.Is6() != (fam == netfilter.IPv6) {
			return r, fmt.Errorf("bad IP address \"%s\"", lo)
		}
		r.MinAddr, r.MaxAddr = a, a
		if isRange {
			b, err := netip.ParseAddr(hi)
			if err != nil || b.Is6() != a.Is6() {
				return r, fmt.Errorf("bad IP address \"%s\"", hi)
			}
			r.MaxAddr = b
		}
	}
	if ports != "" {
		lo, hi, isRange := strings.Cut(ports, "-")
		p, err := parsePort(lo)
		if err != nil || p == 0 {
			return r, fmt.Errorf("port `%s' not valid", lo)
		}
		r.MinPort, r.MaxPort = p, p
		if isRange {
			q, err := parsePort(hi)
			if err != nil || q == 0 || q < p {
				return r, fmt.Errorf("port range `%s' not valid", ports)
			}
			r.MaxPort = q
		}
	}
	if !r.HasAddr() && !r.HasPorts() {
		return r, fmt.Errorf("bad IP address \"%s\"", s)
	}
	return r, nil
}

// appendNATRange prints a NAT range as libxt_NAT's print_range does.
func appendNATRange(b []byte, r netfilter.NATRange) []byte {
	v6 := r.MinAddr.Is6()
	bracket := v6 && r.HasPorts()
	if r.HasAddr() {
		if bracket {
			b = append(b, '[')
		}
		b = r.MinAddr.AppendTo(b)
		if r.MaxAddr != r.MinAddr {
			b = append(b, '-')
			b = r.MaxAddr.AppendTo(b)
		}
		if bracket {
			b = append(b, ']')
		}
	}
	if r.HasPorts() {
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(r.MinPort), 10)
		if r.MaxPort != r.MinPort {
			b = append(b, '-')
			b = strconv.AppendUint(b, uint64(r.MaxPort), 10)
		}
	}
	return b
}

// parsePortsDash parses P or P-Q (MASQUERADE/REDIRECT --to-ports).
func parsePortsDash(s string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	p, err := parsePort(lo)
	if err != nil {
		return 0, 0, err
	}
	q := p
	if isRange {
		if q, err = parsePort(hi); err != nil {
			return 0, 0, err
		}
	}
	return p, q, nil
}

type icmpName struct {
	name      string
	typ       uint8
	cmin, cmx uint8
}

// icmpNames is libxt_icmp's icmp_codes table (names and aliases).
var icmpNames = []icmpName{
	{"any", 0xFF, 0, 0xFF}, {"echo-reply", 0, 0, 0xFF}, {"pong", 0, 0, 0xFF},
	{"destination-unreachable", 3, 0, 0xFF}, {"network-unreachable", 3, 0, 0}, {"host-unreachable", 3, 1, 1},
	{"protocol-unreachable", 3, 2, 2}, {"port-unreachable", 3, 3, 3}, {"fragmentation-needed", 3, 4, 4},
	{"source-route-failed", 3, 5, 5}, {"network-unknown", 3, 6, 6}, {"host-unknown", 3, 7, 7},
	{"network-prohibited", 3, 9, 9}, {"host-prohibited", 3, 10, 10}, {"TOS-network-unreachable", 3, 11, 11},
	{"TOS-host-unreachable", 3, 12, 12}, {"communication-prohibited", 3, 13, 13},
	{"host-precedence-violation", 3, 14, 14}, {"precedence-cutoff", 3, 15, 15},
	{"source-quench", 4, 0, 0xFF}, {"redirect", 5, 0, 0xFF}, {"network-redirect", 5, 0, 0},
	{"host-redirect", 5, 1, 1}, {"TOS-network-redirect", 5, 2, 2}, {"TOS-host-redirect", 5, 3, 3},
	{"echo-request", 8, 0, 0xFF}, {"ping", 8, 0, 0xFF}, {"router-advertisement", 9, 0, 0xFF},
	{"router-solicitation", 10, 0, 0xFF}, {"time-exceeded", 11, 0, 0xFF}, {"ttl-exceeded", 11, 0, 0xFF},
	{"ttl-zero-during-transit", 11, 0, 0}, {"ttl-zero-during-reassembly", 11, 1, 1},
	{"parameter-problem", 12, 0, 0xFF}, {"ip-header-bad", 12, 0, 0}, {"required-option-missing", 12, 1, 1},
	{"timestamp-request", 13, 0, 0xFF}, {"timestamp-reply", 14, 0, 0xFF},
	{"address-mask-request", 17, 0, 0xFF}, {"address-mask-reply", 18, 0, 0xFF},
}

// icmp6Names is libxt_icmp6's icmpv6_codes table.
var icmp6Names = []icmpName{
	{"destination-unreachable", 1, 0, 0xFF}, {"no-route", 1, 0, 0}, {"communication-prohibited", 1, 1, 1},
	{"beyond-scope", 1, 2, 2}, {"address-unreachable", 1, 3, 3}, {"port-unreachable", 1, 4, 4},
	{"failed-policy", 1, 5, 5}, {"reject-route", 1, 6, 6}, {"packet-too-big", 2, 0, 0xFF},
	{"time-exceeded", 3, 0, 0xFF}, {"ttl-exceeded", 3, 0, 0xFF}, {"ttl-zero-during-transit", 3, 0, 0},
	{"ttl-zero-during-reassembly", 3, 1, 1}, {"parameter-problem", 4, 0, 0xFF}, {"bad-header", 4, 0, 0},
	{"unknown-header-type", 4, 1, 1}, {"unknown-option", 4, 2, 2}, {"echo-request", 128, 0, 0xFF},
	{"ping", 128, 0, 0xFF}, {"echo-reply", 129, 0, 0xFF}, {"pong", 129, 0, 0xFF},
	{"router-solicitation", 133, 0, 0xFF}, {"router-advertisement", 134, 0, 0xFF},
	{"neighbour-solicitation", 135, 0, 0xFF}, {"neighbor-solicitation", 135, 0, 0xFF},
	{"neighbour-advertisement", 136, 0, 0xFF}, {"neighbor-advertisement", 136, 0, 0xFF},
	{"redirect", 137, 0, 0xFF},
}

// parseICMPType parses a --icmp-type / --icmpv6-type value: a name or TYPE[/CODE].
func parseICMPType(s string, v6 bool) (netfilter.ICMP, error) {
	names := icmpNames
	if v6 {
		names = icmp6Names
	}
	m := netfilter.ICMP{V6: v6}
	for _, n := range names {
		if strings.EqualFold(n.name, s) {
			m.Type, m.CodeMin, m.CodeMax = n.typ, n.cmin, n.cmx
			m.Any = !v6 && n.typ == 0xFF
			return m, nil
		}
	}
	t, c, hasCode := strings.Cut(s, "/")
	tv, err := strconv.ParseUint(t, 10, 8)
	if err != nil {
		return m, fmt.Errorf("invalid ICMP type `%s'", s)
	}
	m.Type, m.CodeMin, m.CodeMax = uint8(tv), 0, 0xFF
	if hasCode {
		cv, err := strconv.ParseUint(c, 10, 8)
		if err != nil {
			return m, fmt.Errorf("invalid ICMP code `%s'", s)
		}
		m.CodeMin, m.CodeMax = uint8(cv), uint8(cv)
	}
	return m, nil
}

// rejectNames maps --reject-with tokens (and aliases) to the name iptables-save prints.
var rejectNames4 = [...][2]string{
	{"icmp-net-unreachable", "icmp-net-unreachable"}, {"net-unreach", "icmp-net-unreachable"},
	{"icmp-host-unreachable", "icmp-host-unreachable"}, {"host-unreach", "icmp-host-unreachable"},
	{"icmp-proto-unreachable", "icmp-proto-unreachable"}, {"proto-unreach", "icmp-proto-unreachable"},
	{"icmp-port-unreachable", "icmp-port-unreachable"}, {"port-unreach", "icmp-port-unreachable"},
	{"icmp-net-prohibited", "icmp-net-prohibited"}, {"net-prohib", "icmp-net-prohibited"},
	{"icmp-host-prohibited", "icmp-host-prohibited"}, {"host-prohib", "icmp-host-prohibited"},
	{"tcp-reset", "tcp-reset"}, {"tcp-rst", "tcp-reset"},
	{"icmp-admin-prohibited", "icmp-admin-prohibited"}, {"admin-prohib", "icmp-admin-prohibited"},
}

// rejectNames6 is the IPv6 table (libip6t_REJECT).
var rejectNames6 = [...][2]string{
	{"icmp6-no-route", "icmp6-no-route"}, {"no-route", "icmp6-no-route"},
	{"icmp6-adm-prohibited", "icmp6-adm-prohibited"}, {"adm-prohibited", "icmp6-adm-prohibited"},
	{"icmp6-addr-unreachable", "icmp6-addr-unreachable"}, {"addr-unreach", "icmp6-addr-unreachable"},
	{"icmp6-port-unreachable", "icmp6-port-unreachable"}, {"port-unreach", "icmp6-port-unreachable"},
	{"icmp6-policy-fail", "icmp6-policy-fail"}, {"policy-fail", "icmp6-policy-fail"},
	{"icmp6-reject-route", "icmp6-reject-route"}, {"reject-route", "icmp6-reject-route"},
	{"tcp-reset", "tcp-reset"},
}

func rejectName(fam netfilter.Family, tok string) (string, bool) {
	tbl := rejectNames4[:]
	if fam == netfilter.IPv6 {
		tbl = rejectNames6[:]
	}
	for _, x := range tbl {
		if x[0] == tok {
			return x[1], true
		}
	}
	return "", false
}

func defaultReject(fam netfilter.Family) string {
	if fam == netfilter.IPv6 {
		return "icmp6-port-unreachable"
	}
	return "icmp-port-unreachable"
}

// logLevels are syslog level names accepted by --log-level.
var logLevels = [...]string{"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"}

func parseLogLevel(s string) (uint8, error) {
	for i, n := range logLevels {
		if strings.EqualFold(n, s) {
			return uint8(i), nil
		}
	}
	switch strings.ToLower(s) {
	case "panic":
		return 0, nil
	case "err":
		return 3, nil
	case "warn":
		return 4, nil
	}
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil || v > 7 {
		return 0, fmt.Errorf("log level `%s' unknown", s)
	}
	return uint8(v), nil
}
