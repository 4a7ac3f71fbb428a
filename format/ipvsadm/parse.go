package ipvsadm

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/knet-dev/knet/dataplane/ipvs"
)

// Kind says which ipvsadm output a dump is.
type Kind string

// Dump kinds.
const (
	KindList    Kind = "list"    // ipvsadm -Ln, with View saying which columns
	KindConns   Kind = "conns"   // ipvsadm -Lnc
	KindSave    Kind = "save"    // ipvsadm-save -n / ipvsadm -Sn
	KindTimeout Kind = "timeout" // ipvsadm -Ln --timeout
)

// LineKind says what one line of a dump is.
type LineKind string

// Line kinds.
const (
	LineHeader  LineKind = "header"  // "IP Virtual Server version ..." / "IPVS connection entries"
	LineTitle   LineKind = "title"   // column titles
	LineService LineKind = "service" // a virtual service
	LineDest    LineKind = "dest"    // a real server
	LineConn    LineKind = "conn"    // a connection or persistence template
	LineTimeout LineKind = "timeout"
	LineBlank   LineKind = "blank"
	LineUnknown LineKind = "unknown"
)

// Line is one input line and what it was parsed into.
type Line struct {
	Number  int
	Text    string
	Kind    LineKind
	Service *ipvs.Service
	Dest    *ipvs.Dest
	Conn    *ipvs.Conn
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

// Dump is a parsed ipvsadm output.
type Dump struct {
	Kind  Kind
	View  View
	State *ipvs.State
	Lines []Line
	// Skipped lists every line not understood; parsing goes on after them.
	Skipped []Diagnostic
	// Approximate is set when --stats/--rate numbers were printed scaled (K, M, G, T).
	Approximate bool
}

// Parse reads any of the outputs WriteList, WriteConns, WriteSave and WriteTimeout print.
// It fails only when the input is not an ipvsadm dump at all; lines it does not
// understand are reported in Dump.Skipped with their numbers.
func Parse(file string, data []byte) (*Dump, error) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	d := &Dump{State: ipvs.New(), View: ViewDefault}
	first := ""
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			first = strings.TrimSpace(l)
			break
		}
	}
	switch {
	case first == "":
		if len(lines) == 0 {
			d.Kind = KindSave // an empty ipvsadm-save: no services
			return d, nil
		}
		return nil, fmt.Errorf("%s:1: empty ipvsadm dump", file)
	case strings.HasPrefix(first, "IP Virtual Server version"):
		d.Kind = KindList
	case strings.HasPrefix(first, "IPVS connection entries"):
		d.Kind = KindConns
	case strings.HasPrefix(first, "Timeout (tcp tcpfin udp):"):
		d.Kind = KindTimeout
	case strings.HasPrefix(first, "-A ") || strings.HasPrefix(first, "-a "):
		d.Kind = KindSave
	default:
		return nil, fmt.Errorf("%s:1: not an ipvsadm dump (want \"IP Virtual Server version\", \"IPVS connection entries\", \"Timeout\" or -A rules): %q", file, first)
	}
	p := &parser{file: file, d: d, pending: map[*ipvs.Service][]*ipvs.Dest{}}
	for i, l := range lines {
		p.line(i+1, l)
	}
	p.finish()
	return d, nil
}

type parser struct {
	file    string
	d       *Dump
	cur     *ipvs.Service
	order   []*ipvs.Service
	pending map[*ipvs.Service][]*ipvs.Dest
	byName  map[string]*ipvs.Service
}

func (p *parser) skip(n int, text, reason string) {
	p.d.Skipped = append(p.d.Skipped, Diagnostic{File: p.file, Line: n, Text: text, Reason: reason})
	p.d.Lines = append(p.d.Lines, Line{Number: n, Text: text, Kind: LineUnknown})
}

func (p *parser) add(l Line) { p.d.Lines = append(p.d.Lines, l) }

func (p *parser) line(n int, text string) {
	t := strings.TrimSpace(text)
	if t == "" {
		p.add(Line{Number: n, Text: text, Kind: LineBlank})
		return
	}
	switch p.d.Kind {
	case KindList:
		p.listLine(n, text, t)
	case KindConns:
		p.connLine(n, text, t)
	case KindSave:
		p.saveLine(n, text, t)
	case KindTimeout:
		p.timeoutLine(n, text, t)
	}
}

func (p *parser) timeoutLine(n int, text, t string) {
	rest, ok := strings.CutPrefix(t, "Timeout (tcp tcpfin udp):")
	f := strings.Fields(rest)
	if !ok || len(f) != 3 {
		p.skip(n, text, "want \"Timeout (tcp tcpfin udp): TCP FIN UDP\"")
		return
	}
	var v [3]int64
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 32)
		if err != nil || x < 0 {
			p.skip(n, text, "timeout is not a number of seconds (0..2147483647)")
			return
		}
		v[i] = x
	}
	p.d.State.Timeouts = ipvs.Timeouts{TCP: time.Duration(v[0]) * time.Second, TCPFin: time.Duration(v[1]) * time.Second, UDP: time.Duration(v[2]) * time.Second}
	p.add(Line{Number: n, Text: text, Kind: LineTimeout})
}

func (p *parser) listLine(n int, text, t string) {
	switch {
	case strings.HasPrefix(t, "IP Virtual Server version"):
		var ver string
		var size int
		if _, err := fmt.Sscanf(t, "IP Virtual Server version %s (size=%d)", &ver, &size); err != nil {
			p.skip(n, text, "malformed version line")
			return
		}
		p.d.State.Version, p.d.State.ConnTabSize = ver, size
		p.add(Line{Number: n, Text: text, Kind: LineHeader})
		return
	case strings.HasPrefix(t, "Prot LocalAddress:Port"):
		f := strings.Fields(t)
		switch {
		case len(f) > 2 && f[2] == "Conns":
			p.d.View = ViewStats
		case len(f) > 2 && f[2] == "CPS":
			p.d.View = ViewRate
		case len(f) > 2 && f[2] == "Uthreshold":
			p.d.View = ViewThresholds
		case len(f) > 2 && f[2] == "Weight":
			p.d.View = ViewPersistentConn
		}
		p.add(Line{Number: n, Text: text, Kind: LineTitle})
		return
	case strings.HasPrefix(t, "-> RemoteAddress:Port"):
		p.add(Line{Number: n, Text: text, Kind: LineTitle})
		return
	case strings.HasPrefix(t, "->"):
		p.destLine(n, text, strings.Fields(t)[1:])
		return
	}
	p.serviceLine(n, text, strings.Fields(t))
}

func (p *parser) serviceLine(n int, text string, f []string) {
	s := &ipvs.Service{}
	var rest []string
	switch f[0] {
	case "FWM":
		if len(f) < 2 {
			p.skip(n, text, "FWM without a mark")
			return
		}
		m, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || m == 0 {
			p.skip(n, text, "bad firewall mark")
			return
		}
		s.FWMark, s.Family = uint32(m), 4
		rest = f[2:]
		if len(rest) > 0 && rest[0] == "IPv6" {
			s.Family = 6
			rest = rest[1:]
		}
	case "TCP", "UDP", "SCTP":
		if len(f) < 2 {
			p.skip(n, text, "service without address")
			return
		}
		s.Protocol = ipvs.Protocol(strings.ToLower(f[0]))
		ap, err := netip.ParseAddrPort(f[1])
		if err != nil {
			p.skip(n, text, "address is not numeric ADDR:PORT (was the dump taken without -n?)")
			return
		}
		s.Addr, s.Port = ap.Addr(), ap.Port()
		rest = f[2:]
	default:
		p.skip(n, text, "unknown protocol "+strconv.Quote(f[0]))
		return
	}
	switch p.d.View {
	case ViewStats, ViewRate:
		vals, ok := p.numbers(rest, 5)
		if !ok {
			p.skip(n, text, "want 5 counters")
			return
		}
		if p.d.View == ViewStats {
			s.Stats.Conns, s.Stats.InPkts, s.Stats.OutPkts, s.Stats.InBytes, s.Stats.OutBytes = vals[0], vals[1], vals[2], vals[3], vals[4]
		} else {
			s.Stats.CPS, s.Stats.InPPS, s.Stats.OutPPS, s.Stats.InBPS, s.Stats.OutBPS = vals[0], vals[1], vals[2], vals[3], vals[4]
		}
		s.Scheduler = ipvs.WeightedLeastConnection // not shown in these views
	default:
		// The default view, --thresholds and --persistent-conn all print the scheduler and
		// flags after the service (ipvsadm's print_service_entry).
		if len(rest) == 0 {
			p.skip(n, text, "service without scheduler")
			return
		}
		sched, err := ipvs.ParseScheduler(rest[0])
		if err != nil {
			p.skip(n, text, err.Error())
			return
		}
		s.Scheduler = sched
		if err := applyOptions(s, rest[1:], false); err != nil {
			p.skip(n, text, err.Error())
			return
		}
	}
	if err := p.d.State.AddService(s); err != nil {
		p.skip(n, text, err.Error())
		p.cur = nil
		return
	}
	p.cur = s
	p.order = append(p.order, s)
	p.add(Line{Number: n, Text: text, Kind: LineService, Service: s})
}

// applyOptions reads the flags after the scheduler: "(sh-fallback,sh-port)",
// "persistent N", "mask M", "pe NAME", "ops" (or the -b/-p/-M forms when save is set).
func applyOptions(s *ipvs.Service, f []string, save bool) error {
	for i := 0; i < len(f); i++ {
		tok := f[i]
		next := func() (string, error) {
			if i+1 >= len(f) {
				return "", fmt.Errorf("%s needs a value", tok)
			}
			i++
			return f[i], nil
		}
		switch {
		case !save && strings.HasPrefix(tok, "(") && strings.HasSuffix(tok, ")"):
			if err := setSchedFlags(s, strings.Trim(tok, "()")); err != nil {
				return err
			}
		case save && tok == "-b":
			v, err := next()
			if err != nil {
				return err
			}
			if err := setSchedFlags(s, v); err != nil {
				return err
			}
		case (!save && tok == "persistent") || (save && tok == "-p"):
			v, err := next()
			if err != nil {
				return err
			}
			t, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("bad persistence timeout %q", v)
			}
			s.Flags |= ipvs.FlagPersistent
			s.Timeout = uint32(t)
		case (!save && tok == "mask") || (save && tok == "-M"):
			v, err := next()
			if err != nil {
				return err
			}
			bits, err := parseMask(v)
			if err != nil {
				return err
			}
			s.NetmaskBits = bits
		case (!save && tok == "pe") || (save && tok == "--pe"):
			v, err := next()
			if err != nil {
				return err
			}
			s.PEName = v
		case (!save && tok == "ops") || (save && (tok == "-o" || tok == "--ops")):
			s.Flags |= ipvs.FlagOnePacket
		default:
			return fmt.Errorf("unknown service option %q", tok)
		}
	}
	return nil
}

func setSchedFlags(s *ipvs.Service, list string) error {
	if list == "" {
		// ipvsadm prints "()" for sh/mh with only flag-3 set (print_sched_flags names
		// nothing for them): the flag is not recoverable.
		return nil
	}
	for _, fl := range strings.Split(list, ",") {
		switch fl {
		case "flag-1", "sh-fallback", "mh-fallback":
			s.Flags |= ipvs.FlagSched1
		case "flag-2", "sh-port", "mh-port":
			s.Flags |= ipvs.FlagSched2
		case "flag-3":
			s.Flags |= ipvs.FlagSched3
		default:
			return fmt.Errorf("unknown scheduler flag %q", fl)
		}
	}
	return nil
}

func parseMask(v string) (int, error) {
	if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
		b := a.As4()
		m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		ones := 0
		for m&0x80000000 != 0 {
			ones++
			m <<= 1
		}
		if m != 0 {
			return 0, fmt.Errorf("netmask %s is not contiguous", v)
		}
		return ones, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 128 {
		return 0, fmt.Errorf("bad persistence netmask %q", v)
	}
	return n, nil
}

// numbers parses want counters, with ipvsadm's K/M/G/T scaling.
func (p *parser) numbers(f []string, want int) ([]uint64, bool) {
	if len(f) != want {
		return nil, false
	}
	out := make([]uint64, want)
	for i, s := range f {
		mul := uint64(1)
		switch {
		case strings.HasSuffix(s, "K"):
			mul = 1000
		case strings.HasSuffix(s, "M"):
			mul = 1000000
		case strings.HasSuffix(s, "G"):
			mul = 1000000000
		case strings.HasSuffix(s, "T"):
			mul = 1000000000000
		}
		if mul != 1 {
			s = s[:len(s)-1]
			p.d.Approximate = true
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, false
		}
		out[i] = v * mul
	}
	return out, true
}

func parseForward(s string) (ipvs.Forward, bool) {
	switch s {
	case "Masq":
		return ipvs.Masq, true
	case "Local":
		return ipvs.Local, true
	case "Route":
		return ipvs.Route, true
	case "Tunnel":
		return ipvs.Tunnel, true
	}
	return "", false
}

func (p *parser) destLine(n int, text string, f []string) {
	if p.cur == nil {
		p.skip(n, text, "real server line without a service before it")
		return
	}
	if len(f) == 0 {
		p.skip(n, text, "real server without address")
		return
	}
	ap, err := netip.ParseAddrPort(f[0])
	if err != nil {
		p.skip(n, text, "address is not numeric ADDR:PORT (was the dump taken without -n?)")
		return
	}
	d := &ipvs.Dest{Addr: ap.Addr(), Port: ap.Port(), Forward: ipvs.Masq, Weight: 1}
	rest := f[1:]
	atoi := func(s string) (uint32, bool) {
		v, err := strconv.ParseUint(s, 10, 32)
		return uint32(v), err == nil
	}
	ok := true
	switch p.d.View {
	case ViewStats:
		vals, good := p.numbers(rest, 5)
		ok = good
		if ok {
			d.Stats.Conns, d.Stats.InPkts, d.Stats.OutPkts, d.Stats.InBytes, d.Stats.OutBytes = vals[0], vals[1], vals[2], vals[3], vals[4]
		}
	case ViewRate:
		vals, good := p.numbers(rest, 5)
		ok = good
		if ok {
			d.Stats.CPS, d.Stats.InPPS, d.Stats.OutPPS, d.Stats.InBPS, d.Stats.OutBPS = vals[0], vals[1], vals[2], vals[3], vals[4]
		}
	case ViewThresholds:
		if ok = len(rest) == 4; ok {
			var a, b, c, e bool
			d.UpperThreshold, a = atoi(rest[0])
			d.LowerThreshold, b = atoi(rest[1])
			d.ActiveConns, c = atoi(rest[2])
			d.InactConns, e = atoi(rest[3])
			ok = a && b && c && e
		}
	case ViewPersistentConn:
		if ok = len(rest) == 4; ok {
			w, a := atoi(rest[0])
			var b, c, e bool
			d.PersistConns, b = atoi(rest[1])
			d.ActiveConns, c = atoi(rest[2])
			d.InactConns, e = atoi(rest[3])
			d.Weight = int(w)
			ok = a && b && c && e
		}
	default:
		if ok = len(rest) == 4; ok {
			fw, a := parseForward(rest[0])
			w, err := strconv.Atoi(rest[1])
			var c, e bool
			d.ActiveConns, c = atoi(rest[2])
			d.InactConns, e = atoi(rest[3])
			d.Forward, d.Weight = fw, w
			ok = a && err == nil && w >= 0 && c && e
		}
	}
	if !ok {
		p.skip(n, text, "malformed real server line")
		return
	}
	if d.Weight > 0 {
		d.LastWeight = d.Weight
	}
	p.pending[p.cur] = append(p.pending[p.cur], d)
	p.add(Line{Number: n, Text: text, Kind: LineDest, Service: p.cur, Dest: d})
}

// finish adds the real servers so that each service's kernel list equals the printed
// order (the real list order is not visible in a sorted dump).
func (p *parser) finish() {
	for _, s := range p.order {
		ds := p.pending[s]
		for i := len(ds) - 1; i >= 0; i-- {
			d := ds[i]
			active, inact, persist, over := d.ActiveConns, d.InactConns, d.PersistConns, d.Overloaded
			if err := p.d.State.AddDest(s, d); err != nil {
				p.d.Skipped = append(p.d.Skipped, Diagnostic{File: p.file, Reason: err.Error()})
				continue
			}
			d.ActiveConns, d.InactConns, d.PersistConns, d.Overloaded = active, inact, persist, over
		}
	}
}

func (p *parser) connLine(n int, text, t string) {
	if strings.HasPrefix(t, "IPVS connection entries") {
		p.add(Line{Number: n, Text: text, Kind: LineHeader})
		return
	}
	if strings.HasPrefix(t, "pro expire") {
		p.add(Line{Number: n, Text: text, Kind: LineTitle})
		return
	}
	f := strings.Fields(t)
	if len(f) != 6 && len(f) != 8 {
		p.skip(n, text, "want: pro expire state source virtual destination")
		return
	}
	var proto ipvs.Protocol
	switch f[0] {
	case "TCP", "UDP", "SCTP":
		proto = ipvs.Protocol(strings.ToLower(f[0]))
	case "IP":
	default:
		p.skip(n, text, "unknown protocol "+strconv.Quote(f[0]))
		return
	}
	var mm, ss int
	if _, err := fmt.Sscanf(f[1], "%d:%d", &mm, &ss); err != nil || ss > 59 || mm < 0 || ss < 0 {
		p.skip(n, text, "expire is not MM:SS")
		return
	}
	var aps [3]netip.AddrPort
	for i := 0; i < 3; i++ {
		ap, err := netip.ParseAddrPort(f[3+i])
		if err != nil {
			p.skip(n, text, "address is not numeric ADDR:PORT (was the dump taken without -n?)")
			return
		}
		aps[i] = ap
	}
	c := &ipvs.Conn{Proto: proto, State: ipvs.ConnState(f[2]), Client: aps[0], Virtual: aps[1], Real: aps[2],
		Expires: time.Duration(mm*60+ss) * time.Second}
	c.Template = c.State == ipvs.StateNone && aps[0].Port() == 0
	if len(f) == 8 {
		c.PEName, c.PEData = f[6], f[7]
	}
	p.d.State.Conns.Insert(c)
	p.add(Line{Number: n, Text: text, Kind: LineConn, Conn: c})
}

func (p *parser) saveLine(n int, text, t string) {
	f := strings.Fields(t)
	if len(f) < 3 || (f[0] != "-A" && f[0] != "-a") {
		p.skip(n, text, "want an -A or -a rule")
		return
	}
	// the service: -t/-u/--sctp-service ADDR:PORT or -f MARK [-6]
	s := &ipvs.Service{}
	i := 1
	switch f[1] {
	case "-t", "--tcp-service", "-u", "--udp-service", "--sctp-service":
		ap, err := netip.ParseAddrPort(f[2])
		if err != nil {
			p.skip(n, text, "service address is not numeric ADDR:PORT")
			return
		}
		s.Protocol = map[string]ipvs.Protocol{"-t": ipvs.TCP, "--tcp-service": ipvs.TCP, "-u": ipvs.UDP, "--udp-service": ipvs.UDP, "--sctp-service": ipvs.SCTP}[f[1]]
		s.Addr, s.Port = ap.Addr(), ap.Port()
		i = 3
	case "-f", "--fwmark-service":
		m, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || m == 0 {
			p.skip(n, text, "bad firewall mark")
			return
		}
		s.FWMark, s.Family = uint32(m), 4
		i = 3
		if i < len(f) && f[i] == "-6" {
			s.Family = 6
			i++
		}
	default:
		p.skip(n, text, "unknown service option "+strconv.Quote(f[1]))
		return
	}
	rest := f[i:]
	if f[0] == "-A" {
		if len(rest) < 2 || (rest[0] != "-s" && rest[0] != "--scheduler") {
			p.skip(n, text, "want -s SCHEDULER")
			return
		}
		sched, err := ipvs.ParseScheduler(rest[1])
		if err != nil {
			p.skip(n, text, err.Error())
			return
		}
		s.Scheduler = sched
		if err := applyOptions(s, rest[2:], true); err != nil {
			p.skip(n, text, err.Error())
			return
		}
		if err := p.d.State.AddService(s); err != nil {
			p.skip(n, text, err.Error())
			return
		}
		p.order = append(p.order, s)
		p.add(Line{Number: n, Text: text, Kind: LineService, Service: s})
		return
	}
	var svc *ipvs.Service
	if s.IsFWMark() {
		svc = p.d.State.Lookup("", netip.Addr{}, 0, s.FWMark)
		if s.Family == 6 {
			svc = p.d.State.Lookup("", netip.IPv6Unspecified(), 0, s.FWMark)
		}
	} else {
		svc = p.d.State.Service(s.Protocol, s.Addr, s.Port)
	}
	if svc == nil {
		p.skip(n, text, "real server for a service not defined before (-A)")
		return
	}
	d := &ipvs.Dest{Forward: ipvs.Masq, Weight: 1}
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case "-r", "--real-server":
			if j+1 >= len(rest) {
				p.skip(n, text, "-r needs ADDR:PORT")
				return
			}
			j++
			ap, err := netip.ParseAddrPort(rest[j])
			if err != nil {
				p.skip(n, text, "real server is not numeric ADDR:PORT")
				return
			}
			d.Addr, d.Port = ap.Addr(), ap.Port()
		case "-m", "--masquerading":
			d.Forward = ipvs.Masq
		case "-g", "--gatewaying":
			d.Forward = ipvs.Route
		case "-i", "--ipip":
			d.Forward = ipvs.Tunnel
		case "-w", "--weight":
			if j+1 >= len(rest) {
				p.skip(n, text, "-w needs a weight")
				return
			}
			j++
			w, err := strconv.Atoi(rest[j])
			if err != nil || w < 0 {
				p.skip(n, text, "bad weight")
				return
			}
			d.Weight = w
		case "-x", "--u-threshold", "-y", "--l-threshold":
			if j+1 >= len(rest) {
				p.skip(n, text, rest[j]+" needs a value")
				return
			}
			v, err := strconv.ParseUint(rest[j+1], 10, 32)
			if err != nil {
				p.skip(n, text, "bad threshold")
				return
			}
			if rest[j] == "-x" || rest[j] == "--u-threshold" {
				d.UpperThreshold = uint32(v)
			} else {
				d.LowerThreshold = uint32(v)
			}
			j++
		default:
			p.skip(n, text, "unknown real server option "+strconv.Quote(rest[j]))
			return
		}
	}
	if !d.Addr.IsValid() {
		p.skip(n, text, "real server without -r")
		return
	}
	p.pending[svc] = append(p.pending[svc], d)
	p.add(Line{Number: n, Text: text, Kind: LineDest, Service: svc, Dest: d})
}
