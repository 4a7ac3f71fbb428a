// Package simulate spreads many connections from client pods over a Service's endpoints
// as a node's kube-proxy would: iptables mode draws at random with the per-endpoint
// `-m statistic --probability` values of the rendered rules (and `-m recent` for ClientIP
// affinity), IPVS mode runs the dataplane/ipvs schedulers of Linux 6.x on the virtual
// server the IPVS renderer builds (persistence for ClientIP affinity), with connections
// that open at a Poisson rate and close after a lifetime drawn from a duration model, so
// the active/inactive counters that lc, wlc, sed, nq and friends read evolve as on a node.
//
// Everything is deterministic for a seed. Where the kernel itself is random (iptables'
// statistic match, the twos scheduler) the simulation is a sample, and the expected share
// is given beside it; the kernel's own random numbers cannot be predicted.
package simulate

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knet-dev/knet/dataplane/ipvs"
)

// Mode is the proxy mode simulated; the values are CLI tokens.
type Mode string

// Modes.
const (
	IPTables Mode = "iptables"
	IPVS     Mode = "ipvs"
)

// DurationModel says how long connections live; the values are CLI tokens.
type DurationModel string

// Duration models.
const (
	// Fixed: every connection lives exactly Lifetime.
	Fixed DurationModel = "fixed"
	// Exponential: lifetimes are exponentially distributed with mean Lifetime.
	Exponential DurationModel = "exponential"
)

// Endpoint is one backend of the Service.
type Endpoint struct {
	Addr netip.AddrPort
	// Name is what the endpoint is (a pod's namespace/name), for the report.
	Name string
	// Weight is the IPVS weight (kube-proxy always uses 1).
	Weight int
	// Probability is the iptables-mode statistic probability of this endpoint's rule
	// (1 for the last rule, which has no statistic match).
	Probability float64
}

// Config is one simulation.
type Config struct {
	Mode Mode
	// Scheduler is the IPVS scheduler (IPVS mode).
	Scheduler ipvs.Scheduler
	// Service is the virtual address and port clients connect to.
	Service netip.AddrPort
	Proto   ipvs.Protocol
	// Endpoints in the order kube-proxy programs them (iptables rule order; IPVS real
	// servers are added in this order, so the kernel list is the reverse).
	Endpoints []Endpoint
	// Connections is how many new connections to open.
	Connections int
	// Clients are the client source addresses; connections pick a client uniformly.
	Clients []netip.Addr
	// Affinity is ClientIP session affinity with AffinityTimeout (iptables: -m recent,
	// IPVS: persistence).
	Affinity        bool
	AffinityTimeout time.Duration
	// Rate is new connections per second (default 100).
	Rate float64
	// Duration and Lifetime model connection lifetimes (default exponential, 10 s).
	Duration DurationModel
	Lifetime time.Duration
	// Seed makes the run reproducible.
	Seed uint64
}

// Row is one endpoint's result.
type Row struct {
	Endpoint    string  `json:"endpoint"`
	Name        string  `json:"name,omitempty"`
	Connections int     `json:"connections"`
	Share       float64 `json:"share"`
	Expected    float64 `json:"expected"`
}

// Report is a simulation's outcome.
type Report struct {
	Mode      Mode           `json:"mode"`
	Scheduler ipvs.Scheduler `json:"scheduler,omitempty"`
	Service   string         `json:"service"`
	Total     int            `json:"connections"`
	// Failed counts connections no endpoint took (no available real server).
	Failed int   `json:"failed"`
	Rows   []Row `json:"rows"`
	// Deterministic says the same inputs always give these counts on a real kernel too.
	Deterministic bool     `json:"deterministic"`
	Notes         []string `json:"notes,omitempty"`
}

func (c *Config) defaults() error {
	if c.Connections <= 0 {
		return fmt.Errorf("connections must be positive, got %d", c.Connections)
	}
	if len(c.Endpoints) == 0 {
		return fmt.Errorf("service %s has no endpoints", c.Service)
	}
	if len(c.Clients) == 0 {
		return fmt.Errorf("no clients")
	}
	if c.Rate <= 0 {
		c.Rate = 100
	}
	if c.Duration == "" {
		c.Duration = Exponential
	}
	if c.Duration != Fixed && c.Duration != Exponential {
		return fmt.Errorf("unknown duration model %q (want fixed or exponential)", c.Duration)
	}
	if c.Lifetime <= 0 {
		c.Lifetime = 10 * time.Second
	}
	if c.Proto == "" {
		c.Proto = ipvs.TCP
	}
	if c.Affinity && c.AffinityTimeout <= 0 {
		c.AffinityTimeout = 10800 * time.Second
	}
	for i := range c.Endpoints {
		if c.Endpoints[i].Weight == 0 {
			c.Endpoints[i].Weight = 1
		}
	}
	return nil
}

// Run simulates cfg.
func Run(cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	switch cfg.Mode {
	case IPTables:
		return runIPTables(cfg)
	case IPVS:
		return runIPVS(cfg)
	}
	return nil, fmt.Errorf("unknown mode %q (want iptables or ipvs)", cfg.Mode)
}

func newReport(cfg Config) *Report {
	r := &Report{Mode: cfg.Mode, Service: fmt.Sprintf("%s %s", cfg.Proto, cfg.Service), Total: cfg.Connections}
	for _, e := range cfg.Endpoints {
		r.Rows = append(r.Rows, Row{Endpoint: e.Addr.String(), Name: e.Name})
	}
	return r
}

func (r *Report) finish() {
	for i := range r.Rows {
		r.Rows[i].Share = float64(r.Rows[i].Connections) / float64(r.Total)
	}
}

// arrivals yields connection start times and lifetimes.
type clock struct {
	rng  *rand.Rand
	cfg  Config
	now  time.Duration
	port map[netip.Addr]uint16
}

func (c *clock) next() (client netip.Addr, sport uint16, start, life time.Duration) {
	gap := c.rng.ExpFloat64() / c.cfg.Rate
	c.now += time.Duration(gap * float64(time.Second))
	client = c.cfg.Clients[c.rng.IntN(len(c.cfg.Clients))]
	c.port[client]++
	sport = 32768 + c.port[client]%28232
	switch c.cfg.Duration {
	case Fixed:
		life = c.cfg.Lifetime
	default:
		life = time.Duration(c.rng.ExpFloat64() * float64(c.cfg.Lifetime))
	}
	return client, sport, c.now, life
}

func newClock(cfg Config, salt uint64) *clock {
	return &clock{rng: rand.New(rand.NewPCG(cfg.Seed, salt)), cfg: cfg, port: map[netip.Addr]uint16{}}
}

// runIPTables draws as the cascade of statistic rules does; ClientIP affinity keeps a
// client on its endpoint while it was seen within the timeout (-m recent --rcheck
// --seconds T --reap, updated by --set on each new connection).
func runIPTables(cfg Config) (*Report, error) {
	rep := newReport(cfg)
	rep.Deterministic = false
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x1b873593))
	clk := newClock(cfg, 0xcc9e2d51)
	type seen struct {
		ep   int
		last time.Duration
	}
	recent := map[netip.Addr]seen{}
	// expected share: P(i) = p_i * prod_{j<i} (1 - p_j)
	rest := 1.0
	for i, e := range cfg.Endpoints {
		p := e.Probability
		if i == len(cfg.Endpoints)-1 {
			p = 1
		}
		rep.Rows[i].Expected = rest * p
		rest *= 1 - p
	}
	for n := 0; n < cfg.Connections; n++ {
		client, _, start, _ := clk.next()
		pick := -1
		if cfg.Affinity {
			if s, ok := recent[client]; ok && start-s.last <= cfg.AffinityTimeout {
				pick = s.ep
			}
		}
		if pick < 0 {
			for i, e := range cfg.Endpoints {
				if i == len(cfg.Endpoints)-1 || rng.Float64() < e.Probability {
					pick = i
					break
				}
			}
		}
		if cfg.Affinity {
			recent[client] = seen{ep: pick, last: start}
		}
		rep.Rows[pick].Connections++
	}
	rep.Notes = append(rep.Notes, "iptables -m statistic --mode random draws from the kernel's PRNG: counts are a sample, the expected share is exact")
	if cfg.Affinity {
		rep.Notes = append(rep.Notes, fmt.Sprintf("ClientIP affinity (-m recent, %s): each client sticks to its first endpoint", cfg.AffinityTimeout))
	}
	rep.finish()
	return rep, nil
}

type closing struct {
	at time.Duration
	c  *ipvs.Conn
}

type closeHeap []closing

func (h closeHeap) Len() int           { return len(h) }
func (h closeHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h closeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *closeHeap) Push(x any)        { *h = append(*h, x.(closing)) }
func (h *closeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// runIPVS schedules each connection on a fresh IPVS state, closing connections as their
// lifetimes end and letting the table expire entries, so counters evolve over time.
func runIPVS(cfg Config) (*Report, error) {
	if cfg.Scheduler == "" {
		cfg.Scheduler = ipvs.RoundRobin
	}
	rep := newReport(cfg)
	rep.Scheduler = cfg.Scheduler
	rep.Deterministic = cfg.Scheduler.Deterministic()
	st := ipvs.New()
	st.Rand = ipvs.NewPCG(cfg.Seed ^ 0x85ebca6b)
	st.Sysctls.ExpireNodestConn, st.Sysctls.ExpireQuiescentTemplate = true, true
	svc := &ipvs.Service{Protocol: cfg.Proto, Addr: cfg.Service.Addr(), Port: cfg.Service.Port(), Scheduler: cfg.Scheduler}
	if cfg.Affinity {
		svc.Flags |= ipvs.FlagPersistent
		svc.Timeout = uint32(cfg.AffinityTimeout / time.Second)
	}
	if cfg.Scheduler == ipvs.MaglevHashing {
		svc.Flags |= ipvs.FlagMHPort // as kube-proxy sets it
	}
	if err := st.AddService(svc); err != nil {
		return nil, err
	}
	index := map[netip.AddrPort]int{}
	for i, e := range cfg.Endpoints {
		index[e.Addr] = i
		if err := st.AddDest(svc, &ipvs.Dest{Addr: e.Addr.Addr(), Port: e.Addr.Port(), Weight: e.Weight, Forward: ipvs.Masq}); err != nil {
			return nil, err
		}
	}
	expected(cfg, svc, rep)
	clk := newClock(cfg, 0xe6546b64)
	var closes closeHeap
	for n := 0; n < cfg.Connections; n++ {
		client, sport, start, life := clk.next()
		for len(closes) > 0 && closes[0].at <= start {
			c := heap.Pop(&closes).(closing)
			st.Advance(c.at)
			st.Close(c.c)
		}
		st.Advance(start)
		c, err := st.ScheduleOn(svc, ipvs.Packet{Proto: cfg.Proto, Src: client, SrcPort: sport, Dst: cfg.Service.Addr(), DstPort: cfg.Service.Port()}, ipvs.ConnectOptions{})
		if err != nil {
			rep.Failed++
			continue
		}
		rep.Rows[index[c.Dest().AddrPort()]].Connections++
		heap.Push(&closes, closing{at: start + life, c: c})
	}
	if !rep.Deterministic {
		rep.Notes = append(rep.Notes, "twos draws two random servers per connection (get_random_u32_below): counts are a sample")
	}
	switch cfg.Scheduler {
	case ipvs.SourceHashing, ipvs.MaglevHashing:
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s hashes the client address: with %d clients the spread follows which clients hash where", cfg.Scheduler, len(cfg.Clients)))
	case ipvs.DestinationHashing, ipvs.LocalityLeastConnection, ipvs.LocalityLeastConnectionRp:
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s keys on the destination address, which is the one Service VIP here", cfg.Scheduler))
	}
	if cfg.Affinity {
		rep.Notes = append(rep.Notes, fmt.Sprintf("persistence %ds: a template per client holds its server while connections live", svc.Timeout))
	}
	rep.finish()
	return rep, nil
}

// expected fills the long-run share each scheduler aims at: the table share for the
// hashing schedulers (sh: 256 buckets, mh: 251 slots, dh: the VIP's bucket), everything to
// the first highest weight for fo, weight shares for the others.
func expected(cfg Config, svc *ipvs.Service, rep *Report) {
	total := 0
	for _, e := range cfg.Endpoints {
		total += e.Weight
	}
	set := func(i int, v float64) { rep.Rows[i].Expected = v }
	idx := map[netip.AddrPort]int{}
	for i, e := range cfg.Endpoints {
		idx[e.Addr] = i
	}
	switch cfg.Scheduler {
	case ipvs.SourceHashing, ipvs.MaglevHashing:
		size := ipvs.HashTabSize
		if cfg.Scheduler == ipvs.MaglevHashing {
			size = ipvs.MHTabSize
		}
		counts := map[int]int{}
		for _, d := range ipvs.TableOf(svc) {
			if d != nil {
				counts[idx[d.AddrPort()]]++
			}
		}
		for i := range cfg.Endpoints {
			set(i, float64(counts[i])/float64(size))
		}
	case ipvs.DestinationHashing, ipvs.WeightedFailover:
		cands := ipvs.New().Candidates(svc, ipvs.Packet{Proto: cfg.Proto, Dst: cfg.Service.Addr(), DstPort: cfg.Service.Port()})
		for _, c := range cands {
			set(idx[c.Dest.AddrPort()], 1)
		}
	default:
		for i, e := range cfg.Endpoints {
			set(i, float64(e.Weight)/float64(total))
		}
	}
}

// ParseWeights parses "IP:PORT=W,..." into a map.
func ParseWeights(s string) (map[netip.AddrPort]int, error) {
	out := map[netip.AddrPort]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("weight %q: want IP:PORT=WEIGHT", kv)
		}
		ap, err := netip.ParseAddrPort(k)
		if err != nil {
			return nil, fmt.Errorf("weight %q: %w", kv, err)
		}
		w, err := strconv.Atoi(v)
		if err != nil || w < 0 {
			return nil, fmt.Errorf("weight %q: bad weight", kv)
		}
		out[ap] = w
	}
	return out, nil
}

// Clients returns k client addresses: first (when valid) then 100.64.0.1, 100.64.0.2, ...
// (shared address space, so they never collide with cluster addresses).
func Clients(first netip.Addr, k int) []netip.Addr {
	var out []netip.Addr
	if first.IsValid() {
		out = append(out, first)
	}
	a := netip.MustParseAddr("100.64.0.0")
	for len(out) < k {
		a = a.Next()
		out = append(out, a)
	}
	return out
}

// SortRows orders rows by endpoint address (stable output for any mode).
func SortRows(rows []Row) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, _ := netip.ParseAddrPort(rows[i].Endpoint)
		b, _ := netip.ParseAddrPort(rows[j].Endpoint)
		if a.Addr() != b.Addr() {
			return a.Addr().Less(b.Addr())
		}
		return a.Port() < b.Port()
	})
}

// ChiSquare returns Pearson's statistic of the counts against the expected shares (rows
// with zero expected share are skipped).
func (r *Report) ChiSquare() float64 {
	var x float64
	for _, row := range r.Rows {
		e := row.Expected * float64(r.Total-r.Failed)
		if e <= 0 {
			continue
		}
		d := float64(row.Connections) - e
		x += d * d / e
	}
	if math.IsNaN(x) {
		return 0
	}
	return x
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }
