package ipvs

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Packet is what a scheduler sees of the first packet of a new connection.
type Packet struct {
	Proto   Protocol
	Src     netip.Addr
	SrcPort uint16
	Dst     netip.Addr
	DstPort uint16
	FWMark  uint32
}

// RandSource is the random number source of the twos scheduler: Below(n) returns a
// uniform number in [0, n), as the kernel's get_random_u32_below.
type RandSource interface {
	Below(n uint32) uint32
}

// PCG is a RandSource from math/rand/v2's PCG, deterministic for a seed.
type PCG struct{ r *rand.Rand }

// NewPCG returns a seeded RandSource.
func NewPCG(seed uint64) *PCG { return &PCG{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

// Below returns a uniform number in [0, n).
func (p *PCG) Below(n uint32) uint32 { return p.r.Uint32N(n) }

// schedState is a scheduler's per-service state (svc->sched_data) and algorithm.
type schedState interface {
	schedule(st *State, s *Service, p *Packet) *Dest
	added(s *Service, d *Dest)
	updated(s *Service, d *Dest)
	removing(s *Service, idx int) // before Dests[idx] leaves the list
	removed(s *Service, d *Dest)  // after
	clone() schedState
}

func newSchedState(s *Service) schedState {
	var ss schedState
	switch s.Scheduler {
	case RoundRobin:
		ss = &rrState{cursor: -1}
	case WeightedRoundRobin:
		w := &wrrState{}
		w.reset(s, true)
		ss = w
	case LeastConnection:
		ss = simpleSched(scheduleLC)
	case WeightedLeastConnection:
		ss = simpleSched(scheduleWLC)
	case ShortestExpectedDelay:
		ss = simpleSched(scheduleSED)
	case NeverQueue:
		ss = simpleSched(scheduleNQ)
	case WeightedFailover:
		ss = simpleSched(scheduleFO)
	case WeightedOverflow:
		ss = simpleSched(scheduleOVF)
	case PowerOfTwoChoices:
		ss = simpleSched(scheduleTwos)
	case DestinationHashing:
		h := &hashState{src: false}
		h.reassign(s)
		ss = h
	case SourceHashing:
		h := &hashState{src: true}
		h.reassign(s)
		ss = h
	case MaglevHashing:
		m := &mhState{}
		m.reassign(s)
		ss = m
	case LocalityLeastConnection:
		ss = &lblcState{entries: map[netip.Addr]*lblcEntry{}}
	case LocalityLeastConnectionRp:
		ss = &lblcrState{entries: map[netip.Addr]*lblcrEntry{}}
	default:
		ss = simpleSched(func(*State, *Service, *Packet) *Dest { return nil })
	}
	return ss
}

// simpleSched is a stateless scheduler.
type simpleSched func(st *State, s *Service, p *Packet) *Dest

func (f simpleSched) schedule(st *State, s *Service, p *Packet) *Dest { return f(st, s, p) }
func (f simpleSched) added(*Service, *Dest)                           {}
func (f simpleSched) updated(*Service, *Dest)                         {}
func (f simpleSched) removing(*Service, int)                          {}
func (f simpleSched) removed(*Service, *Dest)                         {}
func (f simpleSched) clone() schedState                               { return f }

// --- rr (ip_vs_rr.c) ---

// rrState is svc->sched_data of rr: the list position of the last chosen server
// (-1 is the list head).
type rrState struct{ cursor int }

func (r *rrState) schedule(_ *State, s *Service, _ *Packet) *Dest {
	n := len(s.Dests)
	for i := r.cursor + 1; i < n; i++ {
		if s.Dests[i].available() {
			r.cursor = i
			return s.Dests[i]
		}
	}
	if r.cursor < 0 {
		return nil // started at the head: one pass saw every server
	}
	for i := 0; i <= r.cursor && i < n; i++ {
		if s.Dests[i].available() {
			r.cursor = i
			return s.Dests[i]
		}
	}
	return nil
}

// added: a new server goes to the list head, shifting every position by one.
func (r *rrState) added(*Service, *Dest) {
	if r.cursor >= 0 {
		r.cursor++
	}
}
func (r *rrState) updated(*Service, *Dest) {}

// removing: ip_vs_rr_del_dest moves the cursor to the previous entry when it points at
// the server being removed.
func (r *rrState) removing(_ *Service, idx int) {
	if r.cursor >= idx {
		r.cursor--
	}
}
func (r *rrState) removed(*Service, *Dest) {}
func (r *rrState) clone() schedState       { c := *r; return &c }

// --- wrr (ip_vs_wrr.c) ---

// wrrState is struct ip_vs_wrr_mark: cl the current position (-1 head), cw the current
// weight, mw the maximum weight less (gcd-1), di the gcd of the weights.
type wrrState struct{ cl, cw, mw, di int }

func gcdWeights(s *Service, last bool) int {
	g := 0
	for _, d := range s.Dests {
		w := d.Weight
		if last {
			w = d.LastWeight
		}
		if w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
	}
	return g
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func maxWeight(s *Service) int {
	m := 0
	for _, d := range s.Dests {
		if d.Weight > m {
			m = d.Weight
		}
	}
	return m
}

func (w *wrrState) reset(s *Service, init bool) {
	w.cl = -1
	w.di = gcdWeights(s, false)
	if w.di == 0 {
		w.di = 1
	}
	w.mw = maxWeight(s) - (w.di - 1)
	if init {
		w.cw = w.mw
		return
	}
	if w.cw > w.mw || w.cw == 0 {
		w.cw = w.mw
	} else if w.di > 1 {
		w.cw = (w.cw/w.di)*w.di + 1
	}
}

func (w *wrrState) schedule(_ *State, s *Service, _ *Packet) *Dest {
	if w.mw == 0 {
		return nil
	}
	n := len(s.Dests)
	pos, last, stop := w.cl, w.cl, -2
	lastPass, restarted := false, false
	for {
		for i := pos + 1; i < n; i++ {
			d := s.Dests[i]
			if !d.Overloaded && d.Weight >= w.cw {
				w.cl = i
				return d
			}
			if i == stop {
				w.cl = i
				return nil
			}
		}
		w.cw -= w.di
		if w.cw <= 0 {
			w.cw = w.mw
			if lastPass || last == -1 {
				w.cl = -1
				return nil
			}
			restarted = true
		}
		lastPass = w.cw <= w.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
		pos = -1
	}
}

func (w *wrrState) added(s *Service, _ *Dest)   { w.reset(s, false) }
func (w *wrrState) updated(s *Service, _ *Dest) { w.reset(s, false) }
func (w *wrrState) removing(*Service, int)      {}
func (w *wrrState) removed(s *Service, _ *Dest) { w.reset(s, false) }
func (w *wrrState) clone() schedState           { c := *w; return &c }

// --- lc, wlc, sed, nq, fo, ovf, twos ---

// scheduleLC is ip_vs_lc_schedule: the first server with the least
// (activeconns<<8)+inactconns, skipping overloaded and weight-0 servers.
func scheduleLC(_ *State, s *Service, _ *Packet) *Dest {
	var least *Dest
	var loh int64
	for _, d := range s.Dests {
		if !d.available() {
			continue
		}
		doh := d.overhead()
		if least == nil || doh < loh {
			least, loh = d, doh
		}
	}
	return least
}

// weightedLeast is the shared body of wlc, sed and the lblc/lblcr fallback: the first
// available server, then any later non-overloaded one with loh*dw > doh*lw.
func weightedLeast(dests []*Dest, oh func(*Dest) int64) *Dest {
	var least *Dest
	var loh int64
	i := 0
	for ; i < len(dests); i++ {
		if dests[i].available() {
			least, loh = dests[i], oh(dests[i])
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(dests); i++ {
		d := dests[i]
		if d.Overloaded {
			continue
		}
		doh := oh(d)
		if loh*int64(d.Weight) > doh*int64(least.Weight) {
			least, loh = d, doh
		}
	}
	return least
}

func scheduleWLC(_ *State, s *Service, _ *Packet) *Dest {
	return weightedLeast(s.Dests, (*Dest).overhead)
}

// sedOverhead is ip_vs_sed_dest_overhead: activeconns + 1.
func sedOverhead(d *Dest) int64 { return int64(d.ActiveConns) + 1 }

func scheduleSED(_ *State, s *Service, _ *Packet) *Dest {
	return weightedLeast(s.Dests, sedOverhead)
}

// scheduleNQ is ip_vs_nq_schedule: an idle server (no active connections) at once,
// else the least (activeconns+1)/weight.
func scheduleNQ(_ *State, s *Service, _ *Packet) *Dest {
	var least *Dest
	var loh int64
	for _, d := range s.Dests {
		if !d.available() {
			continue
		}
		doh := sedOverhead(d)
		if d.ActiveConns == 0 {
			return d
		}
		if least == nil || loh*int64(d.Weight) > doh*int64(least.Weight) {
			least, loh = d, doh
		}
	}
	return least
}

// scheduleFO is ip_vs_fo_schedule: the first server with the highest weight.
func scheduleFO(_ *State, s *Service, _ *Packet) *Dest {
	var h *Dest
	hw := 0
	for _, d := range s.Dests {
		if !d.Overloaded && d.Weight > hw {
			h, hw = d, d.Weight
		}
	}
	return h
}

// scheduleOVF is ip_vs_ovf_schedule: the first highest-weight server whose active
// connections do not exceed its weight.
func scheduleOVF(_ *State, s *Service, _ *Packet) *Dest {
	var h *Dest
	hw := 0
	for _, d := range s.Dests {
		w := d.Weight
		if d.Overloaded || int(d.ActiveConns) > w || w == 0 {
			continue
		}
		if h == nil || w > hw {
			h, hw = d, w
		}
	}
	return h
}

// scheduleTwos is ip_vs_twos_schedule: two weighted random picks, the less loaded wins.
func scheduleTwos(st *State, s *Service, _ *Packet) *Dest {
	total := 0
	for _, d := range s.Dests {
		if d.available() {
			total += d.Weight
		}
	}
	if total == 0 {
		return nil
	}
	r := st.rand()
	r1 := int(r.Below(uint32(total + 1)))
	r2 := int(r.Below(uint32(total + 1)))
	return twosPick(s, r1, r2)
}

// twosPick is the deterministic half of twos for given random weights.
func twosPick(s *Service, r1, r2 int) *Dest {
	var c1, c2 *Dest
	w1, w2 := -1, -1
	var o1, o2 int64
	for _, d := range s.Dests {
		if !d.available() {
			continue
		}
		r1 -= d.Weight
		r2 -= d.Weight
		if r1 <= 0 && w1 == -1 {
			c1, w1, o1 = d, d.Weight, d.overhead()
		}
		if r2 <= 0 && w2 == -1 {
			c2, w2, o2 = d, d.Weight, d.overhead()
		}
		if w1 != -1 && w2 != -1 {
			break
		}
	}
	if c1 == nil { // cannot happen with r1 <= total; the kernel would keep the last server
		for _, d := range s.Dests {
			if d.available() {
				c1 = d
			}
		}
	}
	if c2 != nil && int64(w2)*o1 > int64(w1)*o2 {
		return c2
	}
	return c1
}

func (st *State) rand() RandSource {
	if st.Rand == nil {
		st.Rand = NewPCG(1)
	}
	return st.Rand
}

// --- dh, sh (ip_vs_dh.c, ip_vs_sh.c) ---

// hashTabBits is IP_VS_SH_TAB_BITS / IP_VS_DH_TAB_BITS (CONFIG default 8).
const hashTabBits = 8

// HashTabSize is IP_VS_SH_TAB_SIZE / IP_VS_DH_TAB_SIZE: 256 buckets.
const HashTabSize = 1 << hashTabBits

// goldenRatio32 is GOLDEN_RATIO_32 of include/linux/hash.h.
const goldenRatio32 = 0x61C88647

// hash32 is the kernel's hash_32(val, bits).
func hash32(val uint32, nbits uint) uint32 { return (val * goldenRatio32) >> (32 - nbits) }

// addrFold is the kernel's addr_fold: the IPv4 address, or the XOR of the four 32-bit
// words of an IPv6 address, in host order.
func addrFold(a netip.Addr) uint32 {
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	b := a.As16()
	var f uint32
	for i := 0; i < 16; i += 4 {
		f ^= uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
	}
	return f
}

// SHBucket returns the sh bucket of a source address and port (port 0 unless the
// service has sh-port) for a fallback offset: ip_vs_sh_hashkey.
func SHBucket(src netip.Addr, port uint16, offset uint32) int {
	return int((offset + hash32(uint32(port)+addrFold(src), hashTabBits)) & (HashTabSize - 1))
}

// DHBucket returns the dh bucket of a destination address: ip_vs_dh_hashkey.
func DHBucket(dst netip.Addr) int { return int(hash32(addrFold(dst), hashTabBits)) }

// hashState is the 256-bucket table of dh (src false) and sh (src true).
type hashState struct {
	src     bool
	buckets [HashTabSize]*Dest
}

// reassign fills the buckets: dh cycles through the servers one bucket each; sh gives
// each server Weight consecutive buckets (ip_vs_sh_reassign; a weight-0 server gets one).
func (h *hashState) reassign(s *Service) {
	n := len(s.Dests)
	if n == 0 {
		h.buckets = [HashTabSize]*Dest{}
		return
	}
	p, count := 0, 0
	for i := range h.buckets {
		if p == n {
			p = 0
		}
		d := s.Dests[p]
		h.buckets[i] = d
		if !h.src {
			p++
			continue
		}
		count++
		if count >= d.Weight {
			p++
			count = 0
		}
	}
}

// Buckets returns the server in each of the 256 buckets (a copy).
func (h *hashState) Buckets() [HashTabSize]*Dest { return h.buckets }

func (h *hashState) schedule(_ *State, s *Service, p *Packet) *Dest {
	if !h.src {
		d := h.buckets[DHBucket(p.Dst)]
		if d == nil || d.gone || !d.available() {
			return nil
		}
		return d
	}
	var port uint16
	if s.Flags&FlagSHPort != 0 && p.Proto != "" {
		port = p.SrcPort
	}
	ihash := uint32(SHBucket(p.Src, port, 0))
	d := h.buckets[ihash]
	if s.Flags&FlagSHFallback == 0 {
		if d == nil || !d.available() {
			return nil
		}
		return d
	}
	if d == nil {
		return nil
	}
	if d.available() {
		return d
	}
	for off := uint32(0); off < HashTabSize; off++ {
		roff := (off + ihash) % HashTabSize
		d = h.buckets[SHBucket(p.Src, port, roff)]
		if d == nil {
			break
		}
		if d.available() {
			return d
		}
	}
	return nil
}

func (h *hashState) added(s *Service, _ *Dest) { h.reassign(s) }

// updated: sh reassigns on weight changes; dh has no upd_dest hook.
func (h *hashState) updated(s *Service, _ *Dest) {
	if h.src {
		h.reassign(s)
	}
}
func (h *hashState) removing(*Service, int)      {}
func (h *hashState) removed(s *Service, _ *Dest) { h.reassign(s) }
func (h *hashState) clone() schedState           { c := *h; return &c }

// --- lblc, lblcr (ip_vs_lblc.c, ip_vs_lblcr.c) ---

// lblcEntry maps a destination address to its server.
type lblcEntry struct {
	dest    *Dest
	lastuse time.Duration
}

type lblcState struct{ entries map[netip.Addr]*lblcEntry }

// lblcOverloaded is is_overloaded of lblc/lblcr: more active connections than weight
// while some server runs below half its weight.
func lblcOverloaded(s *Service, d *Dest) bool {
	if int(d.ActiveConns) > d.Weight {
		for _, x := range s.Dests {
			if int(x.ActiveConns)*2 < x.Weight {
				return true
			}
		}
	}
	return false
}

// expired says whether an entry has been idle for the expiration. The kernel removes
// such entries from a periodic timer (every 60 s, a full sweep every 30 minutes); the
// model treats them as gone from the moment they are due, which differs from the kernel
// only inside that sweep window.
func expired(lastuse, now, exp time.Duration) bool { return exp > 0 && now >= lastuse+exp }

func (l *lblcState) schedule(st *State, s *Service, p *Packet) *Dest {
	now := st.Conns.Now
	if en := l.entries[p.Dst]; en != nil && !expired(en.lastuse, now, st.Sysctls.LBLCExpiration) {
		en.lastuse = now
		d := en.dest
		if !d.gone && d.Weight > 0 && !lblcOverloaded(s, d) {
			return d
		}
	}
	d := weightedLeast(s.Dests, (*Dest).overhead)
	if d == nil {
		return nil
	}
	l.entries[p.Dst] = &lblcEntry{dest: d, lastuse: now}
	return d
}
func (l *lblcState) added(*Service, *Dest)   {}
func (l *lblcState) updated(*Service, *Dest) {}
func (l *lblcState) removing(*Service, int)  {}
func (l *lblcState) removed(*Service, *Dest) {}
func (l *lblcState) clone() schedState {
	c := &lblcState{entries: make(map[netip.Addr]*lblcEntry, len(l.entries))}
	for k, v := range l.entries {
		e := *v
		c.entries[k] = &e
	}
	return c
}

// lblcrEntry maps a destination address to a set of servers (newest first).
type lblcrEntry struct {
	set     []*Dest
	lastmod time.Duration
	lastuse time.Duration
}

type lblcrState struct{ entries map[netip.Addr]*lblcrEntry }

// setMin is ip_vs_dest_set_min.
func setMin(set []*Dest) *Dest {
	var least *Dest
	var loh int64
	i := 0
	for ; i < len(set); i++ {
		d := set[i]
		if d.Overloaded {
			continue
		}
		if d.Weight > 0 && !d.gone {
			least, loh = d, d.overhead()
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(set); i++ {
		d := set[i]
		if d.Overloaded {
			continue
		}
		doh := d.overhead()
		if loh*int64(d.Weight) > doh*int64(least.Weight) && !d.gone {
			least, loh = d, doh
		}
	}
	return least
}

// setMax is ip_vs_dest_set_max.
func setMax(set []*Dest) *Dest {
	var most *Dest
	var moh int64
	i := 0
	for ; i < len(set); i++ {
		if set[i].Weight > 0 {
			most, moh = set[i], set[i].overhead()
			break
		}
	}
	if most == nil {
		return nil
	}
	for i++; i < len(set); i++ {
		d := set[i]
		doh := d.overhead()
		if moh*int64(d.Weight) < doh*int64(most.Weight) && d.Weight > 0 {
			most, moh = d, doh
		}
	}
	return most
}

func (l *lblcrState) schedule(st *State, s *Service, p *Packet) *Dest {
	now := st.Conns.Now
	exp := st.Sysctls.LBLCRExpiration
	en := l.entries[p.Dst]
	if en != nil && expired(en.lastuse, now, exp) {
		delete(l.entries, p.Dst)
		en = nil
	}
	if en != nil {
		en.lastuse = now
		d := setMin(en.set)
		if len(en.set) > 1 && now > en.lastmod+exp {
			if m := setMax(en.set); m != nil {
				for i, x := range en.set {
					if x == m {
						en.set = append(en.set[:i:i], en.set[i+1:]...)
						en.lastmod = now
						break
					}
				}
			}
		}
		if d != nil && !lblcOverloaded(s, d) {
			return d
		}
		d = weightedLeast(s.Dests, (*Dest).overhead)
		if d == nil {
			return nil
		}
		for _, x := range en.set {
			if x == d {
				return d
			}
		}
		en.set = append([]*Dest{d}, en.set...)
		en.lastmod = now
		return d
	}
	d := weightedLeast(s.Dests, (*Dest).overhead)
	if d == nil {
		return nil
	}
	l.entries[p.Dst] = &lblcrEntry{set: []*Dest{d}, lastmod: now, lastuse: now}
	return d
}
func (l *lblcrState) added(*Service, *Dest)   {}
func (l *lblcrState) updated(*Service, *Dest) {}
func (l *lblcrState) removing(*Service, int)  {}
func (l *lblcrState) removed(*Service, *Dest) {}
func (l *lblcrState) clone() schedState {
	c := &lblcrState{entries: make(map[netip.Addr]*lblcrEntry, len(l.entries))}
	for k, v := range l.entries {
		e := *v
		e.set = append([]*Dest(nil), v.set...)
		c.entries[k] = &e
	}
	return c
}

// --- mh (ip_vs_mh.c) ---

// MHTabSize is IP_VS_MH_TAB_SIZE with the default CONFIG_IP_VS_MH_TAB_INDEX 12 (Debian's
// and most distributions' kernels): IP_VS_MH_TAB_INDEX is 12 - 8 = 4, so primes[4] of
// ip_vs_mh.c's {251, 509, 1021, 2039, 4093, ...}: 4093. (A first version used 251, primes[0];
// the lab's real 6.1 kernel disagreed on 37 of 60 connections.)
const MHTabSize = 4093

// mhTabBits is IP_VS_MH_TAB_BITS (CONFIG_IP_VS_MH_TAB_INDEX / 2).
const mhTabBits = 6

// MHKeys are the hsiphash keys of ip_vs_mh.c's generate_hash_secret. They are constants
// in the kernel source (not random), so every director builds the same Maglev table.
var mhKey1, mhKey2 = [2]uint64{2654435761, 2654435761}, [2]uint64{2654446892, 2654446892}

// mhHashKey is ip_vs_mh_hashkey on a 64-bit kernel.
func mhHashKey(a netip.Addr, port uint16, key [2]uint64, offset uint32) uint32 {
	return HSipHash32(offset+uint32(port)+addrFold(a), key)
}

type mhState struct {
	lookup [MHTabSize]*Dest
	gcd    int
	rshift int
}

func (m *mhState) reassign(s *Service) {
	m.gcd = gcdWeights(s, true)
	m.rshift = 0
	if m.gcd >= 1 {
		mw := 0
		for _, d := range s.Dests {
			if d.LastWeight > mw {
				mw = d.LastWeight
			}
		}
		shift := bits.Len(uint(mw/m.gcd)) - mhTabBits
		if shift > 0 {
			m.rshift = shift
		}
	}
	if m.gcd < 1 {
		m.lookup = [MHTabSize]*Dest{}
		return
	}
	type setup struct{ offset, skip, perm, turns int }
	ds := make([]setup, len(s.Dests))
	for i, d := range s.Dests {
		off := int(mhHashKey(d.Addr, d.Port, mhKey1, 0) % MHTabSize)
		skip := int(mhHashKey(d.Addr, d.Port, mhKey2, 0)%(MHTabSize-1) + 1)
		lw := d.LastWeight
		t := (lw / m.gcd) >> m.rshift
		if t == 0 && lw != 0 {
			t = 1
		}
		ds[i] = setup{offset: off, skip: skip, perm: off, turns: t}
	}
	var taken [MHTabSize]bool
	n, dt := 0, 0
	for n < MHTabSize {
		for i := 0; i < len(s.Dests); {
			if ds[i].turns < 1 {
				i++
				continue
			}
			c := ds[i].perm
			for taken[c] {
				ds[i].perm += ds[i].skip
				if ds[i].perm >= MHTabSize {
					ds[i].perm -= MHTabSize
				}
				c = ds[i].perm
			}
			taken[c] = true
			m.lookup[c] = s.Dests[i]
			n++
			if n == MHTabSize {
				return
			}
			dt++
			if dt >= ds[i].turns {
				dt = 0
				i++
			}
		}
	}
}

func mhUnavailable(d *Dest) bool { return d.Weight <= 0 || d.Overloaded }

func (m *mhState) schedule(_ *State, s *Service, p *Packet) *Dest {
	var port uint16
	if s.Flags&FlagMHPort != 0 {
		port = p.SrcPort
	}
	ihash := mhHashKey(p.Src, port, mhKey1, 0) % MHTabSize
	d := m.lookup[ihash]
	if d == nil {
		return nil
	}
	if !mhUnavailable(d) {
		return d
	}
	if s.Flags&FlagMHFallback == 0 {
		return nil
	}
	for off := uint32(0); off < MHTabSize; off++ {
		roff := (off + ihash) % MHTabSize
		d = m.lookup[mhHashKey(p.Src, port, mhKey1, roff)%MHTabSize]
		if d == nil {
			break
		}
		if !mhUnavailable(d) {
			return d
		}
	}
	return nil
}

func (m *mhState) added(s *Service, _ *Dest)   { m.reassign(s) }
func (m *mhState) updated(s *Service, _ *Dest) { m.reassign(s) }
func (m *mhState) removing(*Service, int)      {}
func (m *mhState) removed(s *Service, _ *Dest) { m.reassign(s) }
func (m *mhState) clone() schedState           { c := *m; return &c }

// HSipHash32 is the Linux kernel's hsiphash of one u32 on 64-bit kernels
// (lib/siphash.c: SipHash-1-3 with a 128-bit key over the 4 bytes in little-endian order,
// the 64-bit result truncated to 32 bits). 32-bit kernels use HalfSipHash instead and build
// different mh tables.
func HSipHash32(v uint32, key [2]uint64) uint32 {
	msg := [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	return uint32(sipHash(1, 3, key[0], key[1], msg[:]))
}

// sipHash is SipHash-c-d (Aumasson and Bernstein) of msg under the key (k0, k1).
func sipHash(c, d int, k0, k1 uint64, msg []byte) uint64 {
	v0 := uint64(0x736f6d6570736575) ^ k0
	v1 := uint64(0x646f72616e646f6d) ^ k1
	v2 := uint64(0x6c7967656e657261) ^ k0
	v3 := uint64(0x7465646279746573) ^ k1
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(msg)
	for len(msg) >= 8 {
		var m uint64
		for i := 7; i >= 0; i-- {
			m = m<<8 | uint64(msg[i])
		}
		v3 ^= m
		for i := 0; i < c; i++ {
			round()
		}
		v0 ^= m
		msg = msg[8:]
	}
	b := uint64(n) << 56
	for i := len(msg) - 1; i >= 0; i-- {
		b |= uint64(msg[i]) << (8 * uint(i))
	}
	v3 ^= b
	for i := 0; i < c; i++ {
		round()
	}
	v0 ^= b
	v2 ^= 0xff
	for i := 0; i < d; i++ {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// TableOf returns a copy of a hashing scheduler's lookup table: the 256 buckets of sh and
// dh, the 251 slots of mh; nil for the other schedulers.
func TableOf(s *Service) []*Dest {
	switch t := s.sched.(type) {
	case *hashState:
		return append([]*Dest(nil), t.buckets[:]...)
	case *mhState:
		return append([]*Dest(nil), t.lookup[:]...)
	}
	return nil
}
