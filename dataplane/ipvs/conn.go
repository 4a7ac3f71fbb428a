package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// ConnState is a connection's protocol state as /proc/net/ip_vs_conn and `ipvsadm -Lnc`
// print it.
type ConnState string

// Connection states the model produces.
const (
	StateNone        ConnState = "NONE" // persistence templates
	StateEstablished ConnState = "ESTABLISHED"
	StateSynRecv     ConnState = "SYN_RECV"
	StateFinWait     ConnState = "FIN_WAIT"
	StateTimeWait    ConnState = "TIME_WAIT"
	StateClose       ConnState = "CLOSE"
	StateUDP         ConnState = "UDP"
	StateSCTPEstab   ConnState = "ESTABLISHED"
)

// Conn is an entry of the IPVS connection table (struct ip_vs_conn): a connection, or a
// persistence template (Template true: client port 0, state NONE).
type Conn struct {
	Proto    Protocol
	Client   netip.AddrPort
	Virtual  netip.AddrPort
	Real     netip.AddrPort
	State    ConnState
	Template bool
	// Expires is the simulated time at which the entry expires.
	Expires time.Duration
	// PEName and PEData are the persistence engine columns of -Lnc --persistent-conn.
	PEName, PEData string

	svc      *Service
	dest     *Dest
	control  *Conn // the template that chose this connection's server
	nControl int   // connections this template controls
	active   bool  // counted in dest.ActiveConns (else InactConns, for non-templates)
	seq      uint64
	gen      uint32 // bumped whenever Expires changes; older heap entries are stale
	live     bool
}

// Service returns the virtual service the entry belongs to.
func (c *Conn) Service() *Service { return c.svc }

// Dest returns the real server the entry is bound to.
func (c *Conn) Dest() *Dest { return c.dest }

// connKey is the connection lookup key, pointer-free so the map hashes plain bytes.
type connKey struct {
	client, virtual [16]byte
	cport, vport    uint16
	proto           uint8
}

func keyOf(proto Protocol, client, virtual netip.AddrPort) connKey {
	return connKey{client: client.Addr().As16(), virtual: virtual.Addr().As16(),
		cport: client.Port(), vport: virtual.Port(), proto: uint8(proto.Number())}
}

type tmplKey struct {
	svc  *Service
	snet netip.Addr
}

// ConnTable is the IPVS connection table with a simulated clock.
type ConnTable struct {
	// Now is the simulated time; Advance moves it and expires entries.
	Now time.Duration

	conns     map[connKey]*Conn
	templates map[tmplKey]*Conn
	exp       expQueues
	seq       uint64
	live      int
	slab      []Conn // connections are carved from chunks: fewer, larger allocations
}

// newConn returns a zeroed entry from the current chunk.
func (t *ConnTable) newConn() *Conn {
	if len(t.slab) == 0 {
		t.slab = make([]Conn, 256)
	}
	c := &t.slab[0]
	t.slab = t.slab[1:]
	return c
}

func newConnTable() *ConnTable {
	return &ConnTable{conns: map[connKey]*Conn{}, templates: map[tmplKey]*Conn{}}
}

// Len returns the number of entries (connections and templates).
func (t *ConnTable) Len() int { return t.live }

// List returns every entry in creation order. (The kernel lists its hash table buckets,
// whose order depends on a random hash seed; creation order is the deterministic stand-in.)
func (t *ConnTable) List() []*Conn {
	out := make([]*Conn, 0, t.live)
	for _, e := range t.exp.all() {
		if e.c.live && e.gen == e.c.gen {
			out = append(out, e.c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// Insert adds a parsed entry (from `ipvsadm -Lnc`) without scheduling or counting it.
func (t *ConnTable) Insert(c *Conn) {
	t.seq++
	c.seq = t.seq
	if c.Template {
		t.templates[tmplKey{snet: c.Client.Addr()}] = c
	} else {
		t.conns[keyOf(c.Proto, c.Client, c.Virtual)] = c
	}
	c.live = true
	t.live++
	t.exp.push(t.Now, expEntry{at: c.Expires, seq: c.seq, gen: c.gen, c: c})
}

func (t *ConnTable) add(c *Conn) {
	t.seq++
	c.seq = t.seq
	c.live = true
	t.live++
	t.exp.push(t.Now, expEntry{at: c.Expires, seq: c.seq, gen: c.gen, c: c})
}

// setExpires re-arms an entry's timer: the old heap entry goes stale (lazy deletion).
func (t *ConnTable) setExpires(c *Conn, at time.Duration) {
	c.Expires = at
	c.gen++
	t.exp.push(t.Now, expEntry{at: at, seq: c.seq, gen: c.gen, c: c})
}

func (t *ConnTable) remove(c *Conn) {
	if !c.live {
		return
	}
	c.live = false
	c.gen++
	t.live--
	if c.Template {
		if t.templates[tmplKey{c.svc, c.Client.Addr()}] == c {
			delete(t.templates, tmplKey{c.svc, c.Client.Addr()})
		}
	} else {
		k := keyOf(c.Proto, c.Client, c.Virtual)
		if t.conns[k] == c {
			delete(t.conns, k)
		}
	}
}

// unbind releases the entry's hold on its server (ip_vs_unbind_dest).
func unbind(c *Conn) {
	d := c.dest
	if d == nil {
		return
	}
	switch {
	case c.Template:
		if d.PersistConns > 0 {
			d.PersistConns--
		}
	case c.active:
		if d.ActiveConns > 0 {
			d.ActiveConns--
		}
	default:
		if d.InactConns > 0 {
			d.InactConns--
		}
	}
	d.unbound()
	c.dest = nil
}

func (t *ConnTable) expire(c *Conn) {
	if c.Template && c.nControl > 0 {
		// ip_vs_conn_expire re-arms a template while it still controls connections.
		t.setExpires(c, t.Now+time.Duration(c.svc.Timeout)*time.Second)
		return
	}
	t.remove(c)
	unbind(c)
	if c.control != nil {
		c.control.nControl--
		c.control = nil
	}
}

// Advance moves the clock to now and expires every entry due by then.
func (st *State) Advance(now time.Duration) {
	st.ensure()
	t := st.Conns
	if now < t.Now {
		return
	}
	for {
		i := t.exp.peek()
		if i < 0 || t.exp.qs[i].items[t.exp.qs[i].head].at > now {
			break
		}
		e := t.exp.pop(i)
		c := e.c
		if !c.live || e.gen != c.gen {
			continue // stale: re-armed or removed since
		}
		if t.Now < e.at {
			t.Now = e.at
		}
		t.expire(c)
	}
	t.Now = now
}

func (t *ConnTable) dropService(s *Service) {
	for _, c := range t.List() {
		if c.svc == s {
			t.remove(c)
			unbind(c)
		}
	}
}

func (t *ConnTable) dropDest(d *Dest) {
	for _, c := range t.List() {
		if c.dest == d && !c.Template {
			t.remove(c)
			unbind(c)
			if c.control != nil {
				c.control.nControl--
			}
		}
	}
}

// ErrNoService says a packet matched no virtual service.
var ErrNoService = errors.New("no ipvs virtual service")

// NoDestError says the scheduler found no available real server: the kernel then sends
// ICMP port unreachable and drops the packet (ip_vs_leave).
type NoDestError struct{ Service *Service }

func (e *NoDestError) Error() string {
	return fmt.Sprintf("ipvs service %s: no destination available (kernel replies ICMP port unreachable)", e.Service)
}

// ConnectOptions tune how Schedule records the new connection.
type ConnectOptions struct {
	// SynOnly leaves a TCP connection in SYN_RECV (60 s timeout) instead of taking the
	// handshake as completed (ESTABLISHED, tcp timeout). Both count as active: every new
	// connection starts inactive (the dest's conn_flags carry IP_VS_CONN_F_INACTIVE) and
	// the first TCP state change to an active state of tcp_state_active_table (SYN_RECV,
	// SYN_SENT, SYNACK, ESTABLISHED) moves it to ActiveConns; UDP never moves, so UDP
	// entries are counted in InActConn, as ipvsadm shows for DNS.
	SynOnly bool
}

// Schedule handles the first packet of a connection as ip_vs_conn_in_get /
// ip_vs_schedule / ip_vs_sched_persist do: an existing entry is returned as is;
// otherwise the persistence template (if the service is persistent) or the scheduler
// picks a real server, the connection is added to the table and counted on the server.
func (st *State) Schedule(p Packet, opts ConnectOptions) (*Conn, error) {
	st.ensure()
	svc := st.Lookup(p.Proto, p.Dst, p.DstPort, p.FWMark)
	if svc == nil {
		return nil, fmt.Errorf("%s %s: %w", p.Proto, netip.AddrPortFrom(p.Dst, p.DstPort), ErrNoService)
	}
	return st.ScheduleOn(svc, p, opts)
}

// ScheduleOn is Schedule for a service already looked up.
func (st *State) ScheduleOn(svc *Service, p Packet, opts ConnectOptions) (*Conn, error) {
	st.ensure()
	t := st.Conns
	client, virtual := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
	k := keyOf(p.Proto, client, virtual)
	if c := t.conns[k]; c != nil {
		return c, nil
	}
	var tmpl *Conn
	var d *Dest
	if svc.Flags&FlagPersistent != 0 {
		tk := tmplKey{svc, persistNet(p.Src, svc.NetmaskBits)}
		tmpl = t.templates[tk]
		if tmpl != nil {
			td := tmpl.dest
			if td == nil || td.gone || (st.Sysctls.ExpireQuiescentTemplate && td.Weight == 0) {
				// the template is stale: drop it now, schedule again
				tmpl.nControl = 0
				t.expire(tmpl)
				tmpl = nil
			} else {
				d = td
			}
		}
		if tmpl == nil {
			if d = svc.sched.schedule(st, svc, &p); d == nil {
				return nil, &NoDestError{svc}
			}
			tmpl = &Conn{Proto: p.Proto, Client: netip.AddrPortFrom(tk.snet, 0),
				Virtual: netip.AddrPortFrom(p.Dst, svc.Port), Real: d.AddrPort(),
				State: StateNone, Template: true, svc: svc, dest: d}
			if svc.IsFWMark() {
				tmpl.Virtual = netip.AddrPortFrom(p.Dst, 0)
			}
			d.PersistConns++
			t.templates[tk] = tmpl
			tmpl.Expires = t.Now + time.Duration(svc.Timeout)*time.Second
			t.add(tmpl)
		} else {
			t.setExpires(tmpl, t.Now+time.Duration(svc.Timeout)*time.Second)
		}
	} else if d = svc.sched.schedule(st, svc, &p); d == nil {
		return nil, &NoDestError{svc}
	}
	c := t.newConn()
	*c = Conn{Proto: p.Proto, Client: client, Virtual: virtual,
		Real: netip.AddrPortFrom(d.Addr, d.Port), svc: svc, dest: d, control: tmpl}
	if d.Port == 0 { // port-zero real servers keep the virtual port
		c.Real = netip.AddrPortFrom(d.Addr, p.DstPort)
	}
	switch p.Proto {
	case UDP:
		c.State, c.Expires = StateUDP, t.Now+st.Timeouts.UDP
	default:
		if opts.SynOnly {
			c.State, c.Expires, c.active = StateSynRecv, t.Now+60*time.Second, true
		} else {
			c.State, c.Expires, c.active = StateEstablished, t.Now+st.Timeouts.TCP, true
		}
	}
	if c.active {
		d.ActiveConns++
	} else {
		d.InactConns++
	}
	d.bound()
	d.Stats.Conns++
	svc.Stats.Conns++
	if tmpl != nil {
		tmpl.nControl++
	}
	t.conns[k] = c
	t.add(c)
	return c, nil
}

// Establish moves a SYN_RECV connection to ESTABLISHED (both active: only the timeout
// changes).
func (st *State) Establish(c *Conn) {
	if c.Template || c.dest == nil || c.Proto == UDP || c.State != StateSynRecv {
		return
	}
	c.State = StateEstablished
	st.Conns.setExpires(c, st.Conns.Now+st.Timeouts.TCP)
}

// Close ends a connection as the client's FIN does: a TCP connection goes to FIN_WAIT
// (counted inactive) and expires after the tcpfin timeout; UDP entries just run out.
func (st *State) Close(c *Conn) {
	if c.Template || c.dest == nil || c.Proto == UDP {
		return
	}
	if c.active {
		c.dest.ActiveConns--
		c.dest.InactConns++
		c.active = false
	}
	c.State = StateFinWait
	st.Conns.setExpires(c, st.Conns.Now+st.Timeouts.TCPFin)
}

// persistNet masks a client address with the persistence netmask.
func persistNet(a netip.Addr, bits int) netip.Addr {
	if bits <= 0 || bits >= a.BitLen() {
		return a
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a
	}
	return p.Addr()
}

// Choice is one possible outcome of scheduling a new connection.
type Choice struct {
	Dest        *Dest
	Probability float64
	// Reason says why: "persistence template", "scheduler rr", ...
	Reason string
}

// Candidates returns every real server a new connection described by p could go to
// now, with its probability, without changing any state. Deterministic schedulers give
// one choice; twos gives its exact distribution; no choice means no available server.
func (st *State) Candidates(svc *Service, p Packet) []Choice {
	st.ensure()
	if svc.Flags&FlagPersistent != 0 {
		if tmpl := st.Conns.templates[tmplKey{svc, persistNet(p.Src, svc.NetmaskBits)}]; tmpl != nil {
			td := tmpl.dest
			if td != nil && !td.gone && !(st.Sysctls.ExpireQuiescentTemplate && td.Weight == 0) {
				return []Choice{{Dest: td, Probability: 1, Reason: "persistence template"}}
			}
		}
	}
	if svc.Scheduler == PowerOfTwoChoices {
		return twosDistribution(svc)
	}
	if svc.sched == nil {
		return nil
	}
	d := svc.sched.clone().schedule(st, svc, &p)
	if d == nil {
		return nil
	}
	return []Choice{{Dest: d, Probability: 1, Reason: "scheduler " + string(svc.Scheduler)}}
}

// twosDistribution computes twos's exact outcome distribution: the first random weight
// r in [0, total] picks the first server whose cumulative weight reaches r.
func twosDistribution(svc *Service) []Choice {
	type opt struct {
		d *Dest
		p float64
	}
	var avail []*Dest
	total := 0
	for _, d := range svc.Dests {
		if d.available() {
			avail = append(avail, d)
			total += d.Weight
		}
	}
	if total == 0 {
		return nil
	}
	pick := make([]float64, len(avail))
	for i, d := range avail {
		w := d.Weight
		if i == 0 {
			w++ // r == 0 also lands on the first server
		}
		pick[i] = float64(w) / float64(total+1)
	}
	prob := map[*Dest]float64{}
	for i, a := range avail {
		for j, b := range avail {
			win := a
			if int64(b.Weight)*a.overhead() > int64(a.Weight)*b.overhead() {
				win = b
			}
			prob[win] += pick[i] * pick[j]
			_ = j
		}
	}
	var out []Choice
	for _, d := range svc.Dests {
		if p, ok := prob[d]; ok && p > 0 {
			out = append(out, Choice{Dest: d, Probability: p, Reason: "scheduler twos (random)"})
		}
	}
	return out
}

// expEntry is one armed timer; entries whose gen no longer matches their connection's
// are stale and skipped.
type expEntry struct {
	at  time.Duration
	seq uint64
	gen uint32
	c   *Conn
}

// expQueues hold the armed timers. Every timer is armed at Now+d with a clock that never
// goes back, so timers of the same duration d expire in the order they were armed: one FIFO
// per duration keeps them sorted at O(1) per timer, and expiry merges the queue heads by
// (time, creation).
type expQueues struct {
	byDur map[time.Duration]int
	qs    []expFIFO
	n     int
}

type expFIFO struct {
	items []expEntry
	head  int
}

func (e expEntry) before(f expEntry) bool {
	if e.at != f.at {
		return e.at < f.at
	}
	return e.seq < f.seq
}

func (q *expQueues) push(now time.Duration, e expEntry) {
	if q.byDur == nil {
		q.byDur = map[time.Duration]int{}
	}
	d := e.at - now
	i, ok := q.byDur[d]
	if !ok {
		i = len(q.qs)
		q.byDur[d] = i
		q.qs = append(q.qs, expFIFO{})
	}
	f := &q.qs[i]
	f.items = append(f.items, e)
	q.n++
}

// peek returns the queue holding the earliest timer, -1 when none.
func (q *expQueues) peek() int {
	best := -1
	for i := range q.qs {
		f := &q.qs[i]
		if f.head == len(f.items) {
			continue
		}
		if best < 0 || f.items[f.head].before(q.qs[best].items[q.qs[best].head]) {
			best = i
		}
	}
	return best
}

func (q *expQueues) pop(i int) expEntry {
	f := &q.qs[i]
	e := f.items[f.head]
	f.items[f.head] = expEntry{}
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	} else if f.head > 1024 && f.head*2 > len(f.items) {
		n := copy(f.items, f.items[f.head:])
		clear(f.items[n:])
		f.items, f.head = f.items[:n], 0
	}
	q.n--
	return e
}

// all returns every armed timer (stale ones included).
func (q *expQueues) all() []expEntry {
	var out []expEntry
	for i := range q.qs {
		out = append(out, q.qs[i].items[q.qs[i].head:]...)
	}
	return out
}

// Decide is the tracer's IPVS step for a packet that starts a new connection: the virtual
// service it hits (nil if none, then IPVS lets the packet pass to the local stack) and every
// real server it may go to with its probability, without changing state.
func (st *State) Decide(p Packet) (*Service, []Choice) {
	svc := st.Lookup(p.Proto, p.Dst, p.DstPort, p.FWMark)
	if svc == nil {
		return nil, nil
	}
	return svc, st.Candidates(svc, p)
}
