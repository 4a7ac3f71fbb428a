// Package iproute prints and parses the text iproute2 prints for a network namespace:
// `ip addr`, `ip link` (with `-d`, `-4`/`-6`, `-o`, `show dev X`), `ip route` (`show table
// all|local|N`, `-d`), `ip rule`, `ip neigh` and `bridge fdb show`, to the byte for iproute2
// 6.1.0 (Debian 12) by default. The version is an option because output changed over time
// (releases before 4.15 printed two spaces between the route fields after `dev`; 6.0 added
// `allmulti` and the tso/gro sizes to `ip -d link`; 6.3 added address `proto`).
//
// Printers write to an io.Writer from a *route.Stack; parsers fill a *route.Stack and report
// what they did not understand with file:line. Print(Parse(x)) == x for canonical input.
package iproute

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/route"
)

// DefaultVersion is the iproute2 version printed by default (Debian 12's).
const DefaultVersion = "6.1.0"

// Family filters by address family (`-4`, `-6`); FamilyAll prints both.
type Family int

// Families.
const (
	FamilyAll Family = 0
	Family4   Family = 4
	Family6   Family = 6
)

// Options are the command-line switches that change what iproute2 prints.
type Options struct {
	// Version is the iproute2 version to imitate ("6.1.0" when empty).
	Version string
	// Details is `-d`.
	Details bool
	// Family is `-4` / `-6`.
	Family Family
	// Oneline is `-o`.
	Oneline bool
	// Dev restricts output to one device (`show dev X`).
	Dev string
	// Table selects route tables: "" is the default (main), "all", "local", "main" or a
	// number or rt_tables name.
	Table string
}

func (o Options) version() [3]int {
	v := o.Version
	if v == "" {
		v = DefaultVersion
	}
	var out [3]int
	for i, p := range strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3) {
		out[i], _ = strconv.Atoi(p)
	}
	return out
}

func (o Options) atLeast(maj, min int) bool {
	v := o.version()
	return v[0] > maj || v[0] == maj && v[1] >= min
}

// lineWriter collects one logical record and writes it, joining with `\` under -o.
type lineWriter struct {
	w       *bufio.Writer
	oneline bool
}

func (lw *lineWriter) record(s string) {
	if lw.oneline {
		s = strings.TrimSuffix(s, "\n")
		s = strings.ReplaceAll(s, "\n", "\\") + "\n"
	}
	lw.w.WriteString(s)
}

// PrintRoutes prints routes as `ip [-d] [-4|-6] route show [table T]` does.
func PrintRoutes(w io.Writer, s *route.Stack, o Options) error {
	bw := bufio.NewWriter(w)
	tableSel, all, err := tableFilter(s, o.Table)
	if err != nil {
		return err
	}
	var buf []byte
	fam := o.Family
	if fam == FamilyAll && o.Table == "" {
		fam = Family4 // `ip route` lists IPv4 unless -6 is given
	}
	for _, r := range s.Routes {
		if !all && r.Table != tableSel {
			continue
		}
		if fam == Family4 && !r.Dst.Addr().Is4() || fam == Family6 && r.Dst.Addr().Is4() {
			continue
		}
		if o.Dev != "" && r.Dev != o.Dev {
			continue
		}
		buf = AppendRoute(buf[:0], s, r, o, all)
		bw.Write(buf)
	}
	return bw.Flush()
}

func tableFilter(s *route.Stack, t string) (route.TableID, bool, error) {
	switch t {
	case "", "main":
		return route.TableMain, false, nil
	case "all":
		return 0, true, nil
	case "local":
		return route.TableLocal, false, nil
	case "default":
		return route.TableDefault, false, nil
	}
	for id, n := range s.TableNames {
		if n == t {
			return id, false, nil
		}
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("table id value is invalid: %q", t)
	}
	return route.TableID(n), false, nil
}

// FormatRoute returns one route as `ip route` prints it, with the final newline; showTable
// prints `table T` for non-main tables (as `show table all` does).
func FormatRoute(s *route.Stack, r *route.Route, o Options, showTable bool) string {
	return string(AppendRoute(make([]byte, 0, 128), s, r, o, showTable))
}

// AppendRoute appends FormatRoute's text to b.
func AppendRoute(b []byte, s *route.Stack, r *route.Route, o Options, showTable bool) []byte {
	// iproute2 before 4.15 (the print_route rewrite for JSON) printed the fields after `dev`
	// as " table %s ", " proto %s ", " scope %s ", " src %s ", " metric %d " (a leading and
	// a trailing space, so two spaces between fields: CentOS 7's
	// "10.0.2.0/24 dev enp0s3  proto kernel  scope link  src 10.0.2.15  metric 100 ") and
	// route metrics as " mtu %u" (leading space only).
	old := !o.atLeast(4, 15)
	lead := func() {
		if old {
			b = append(b, ' ')
		}
	}
	word := func(k, v string) {
		if k != "" {
			b = append(b, k...)
			b = append(b, ' ')
		}
		b = append(b, v...)
		b = append(b, ' ')
	}
	addr := func(k string, a netip.Addr) {
		b = append(b, k...)
		b = append(b, ' ')
		b = a.AppendTo(b)
		b = append(b, ' ')
	}
	num := func(k string, n int) {
		b = append(b, k...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, ' ')
	}
	if r.Type != route.TypeUnicast || o.Details {
		word("", string(r.Type))
	}
	switch {
	case r.Dst.Bits() == 0:
		word("", "default")
	case r.Dst.IsSingleIP():
		b = r.Dst.Addr().AppendTo(b)
		b = append(b, ' ')
	default:
		b = r.Dst.AppendTo(b)
		b = append(b, ' ')
	}
	if r.Gw.IsValid() {
		addr("via", r.Gw)
	}
	if r.Dev != "" {
		word("dev", r.Dev)
	}
	if showTable && r.Table != route.TableMain {
		lead()
		word("table", s.TableName(r.Table))
	}
	if r.Protocol != route.ProtoBoot || o.Details {
		lead()
		word("proto", r.Protocol.String())
	}
	if r.Scope != route.ScopeUniverse || o.Details {
		lead()
		word("scope", r.Scope.String())
	}
	if r.Src.IsValid() {
		lead()
		addr("src", r.Src)
	}
	if r.Metric != 0 || !r.Dst.Addr().Is4() {
		lead()
		num("metric", r.Metric)
	}
	for _, f := range r.Flags.Names() {
		word("", f)
	}
	if r.Error != 0 {
		num("error", r.Error)
	}
	metric := func(k string, n int) {
		if old {
			b = append(b, ' ')
			b = append(b, k...)
			b = append(b, ' ')
			b = strconv.AppendInt(b, int64(n), 10)
			return
		}
		num(k, n)
	}
	if r.MTU != 0 {
		metric("mtu", r.MTU)
	}
	if r.AdvMSS != 0 {
		metric("advmss", r.AdvMSS)
	}
	for _, h := range r.MultiPath {
		b = append(b, "\n\tnexthop "...)
		if h.Gw.IsValid() {
			addr("via", h.Gw)
		}
		if h.Dev != "" {
			word("dev", h.Dev)
		}
		num("weight", max(h.Weight, 1))
		for _, f := range h.Flags.Names() {
			word("", f)
		}
	}
	if r.Pref != "" {
		b = append(b, "pref "...)
		b = append(b, r.Pref...)
	}
	return append(b, '\n')
}

func dstString(p netip.Prefix) string {
	if p.Bits() == 0 {
		return "default"
	}
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// PrintRules prints `ip rule` (IPv4 rules).
func PrintRules(w io.Writer, s *route.Stack, o Options) error {
	bw := bufio.NewWriter(w)
	for _, r := range s.Rules {
		bw.WriteString(FormatRule(s, r))
	}
	return bw.Flush()
}

// FormatRule returns one `ip rule` line: `PRIO:\t[not ]from SEL [to P ][fwmark M[/MASK] ][iif I ][oif O ]ACTION`.
func FormatRule(s *route.Stack, r *route.Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:\t", r.Priority)
	if r.Not {
		b.WriteString("not ")
	}
	if r.Src.IsValid() && r.Src.Bits() > 0 {
		fmt.Fprintf(&b, "from %s ", dstString(r.Src))
	} else {
		b.WriteString("from all ")
	}
	if r.Dst.IsValid() && r.Dst.Bits() > 0 {
		fmt.Fprintf(&b, "to %s ", dstString(r.Dst))
	}
	if r.HasMark {
		if r.Mask == 0xffffffff {
			fmt.Fprintf(&b, "fwmark %#x ", r.Mark)
		} else {
			fmt.Fprintf(&b, "fwmark %#x/%#x ", r.Mark, r.Mask)
		}
	}
	if r.IIF != "" {
		fmt.Fprintf(&b, "iif %s ", r.IIF)
	}
	if r.OIF != "" {
		fmt.Fprintf(&b, "oif %s ", r.OIF)
	}
	switch r.Action {
	case route.ActionLookup, "":
		fmt.Fprintf(&b, "lookup %s", s.TableName(r.Table))
	case route.ActionGoto:
		fmt.Fprintf(&b, "goto %d", r.Goto)
	default:
		b.WriteString(string(r.Action))
	}
	b.WriteByte('\n')
	return b.String()
}

// PrintNeighs prints `ip neigh`.
func PrintNeighs(w io.Writer, s *route.Stack, o Options) error {
	bw := bufio.NewWriter(w)
	for _, n := range s.Neighs {
		if o.Dev != "" && n.Dev != o.Dev {
			continue
		}
		if o.Family == Family4 && !n.IP.Is4() || o.Family == Family6 && n.IP.Is4() {
			continue
		}
		bw.WriteString(FormatNeigh(n, o.Dev != ""))
	}
	return bw.Flush()
}

// FormatNeigh returns one `ip neigh` line (`dev X` omitted under a dev filter).
func FormatNeigh(n *route.Neigh, devFiltered bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ", n.IP)
	if !devFiltered {
		fmt.Fprintf(&b, "dev %s ", n.Dev)
	}
	if len(n.LLAddr) > 0 {
		fmt.Fprintf(&b, "lladdr %s ", n.LLAddr)
	}
	if n.ExternLearn {
		b.WriteString("extern_learn ")
	}
	if n.Router {
		b.WriteString("router ")
	}
	if n.Proxy {
		b.WriteString("proxy ")
	}
	fmt.Fprintf(&b, "%s \n", n.State)
	return b.String()
}

// PrintFDB prints `bridge fdb show [dev X]`.
func PrintFDB(w io.Writer, s *route.Stack, o Options) error {
	bw := bufio.NewWriter(w)
	for _, f := range s.FDB {
		if o.Dev != "" && f.Dev != o.Dev {
			continue
		}
		bw.WriteString(FormatFDB(f, o.Dev != ""))
	}
	return bw.Flush()
}

// FormatFDB returns one `bridge fdb show` line.
func FormatFDB(f *route.FDB, devFiltered bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s ", f.MAC)
	if !devFiltered {
		fmt.Fprintf(&b, "dev %s ", f.Dev)
	}
	if f.VLAN != 0 {
		fmt.Fprintf(&b, "vlan %d ", f.VLAN)
	}
	if f.Dst.IsValid() {
		fmt.Fprintf(&b, "dst %s ", f.Dst)
	}
	if f.Self {
		b.WriteString("self ")
	}
	if f.ExternLearn {
		b.WriteString("extern_learn ")
	}
	if f.Master != "" {
		fmt.Fprintf(&b, "master %s ", f.Master)
	}
	fmt.Fprintf(&b, "%s\n", f.State)
	return b.String()
}
