package ipvs

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// step is one action of a hand-worked scheduling sequence.
type step struct {
	// connect from src (port from the step index) and expect the named server ("" = none)
	want string
	// or: an action run before connecting: "close:NAME" closes NAME's oldest open
	// connection, "add:NAME:W" adds a server, "weight:NAME:W" edits a weight.
	do string
	// dst overrides the packet's destination address (lblc, lblcr, dh).
	dst string
	src string
}

type dspec struct {
	name   string
	weight int
}

// names maps test server names to addresses 10.244.0.<n>.
func addrOf(name string) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 244, 0, name[0] - 'A' + 1})
}

func nameOf(d *Dest) string {
	if d == nil {
		return ""
	}
	return string(rune('A' + d.Addr.As4()[3] - 1))
}

func runSequence(t *testing.T, sched Scheduler, flags Flags, dests []dspec, steps []step) {
	t.Helper()
	st := New()
	svc := &Service{Protocol: TCP, Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Scheduler: sched, Flags: flags}
	if err := st.AddService(svc); err != nil {
		t.Fatal(err)
	}
	for _, d := range dests {
		if err := st.AddDest(svc, &Dest{Addr: addrOf(d.name), Port: 8080, Weight: d.weight}); err != nil {
			t.Fatal(err)
		}
	}
	open := map[string][]*Conn{}
	var got, want []string
	for i, s := range steps {
		if s.do != "" {
			var name string
			var w int
			switch {
			case len(s.do) > 6 && s.do[:6] == "close:":
				name = s.do[6:]
				if len(open[name]) == 0 {
					t.Fatalf("step %d: %s has no open connection", i, name)
				}
				st.Close(open[name][0])
				open[name] = open[name][1:]
			case s.do[:4] == "add:":
				fmt.Sscanf(s.do[4:], "%1s:%d", &name, &w)
				if err := st.AddDest(svc, &Dest{Addr: addrOf(name), Port: 8080, Weight: w}); err != nil {
					t.Fatal(err)
				}
			case len(s.do) > 7 && s.do[:7] == "weight:":
				fmt.Sscanf(s.do[7:], "%1s:%d", &name, &w)
				if err := st.EditDest(svc, svc.Dest(addrOf(name), 8080), w, 0, 0); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("bad step %q", s.do)
			}
			continue
		}
		src := netip.MustParseAddr("192.168.1.2")
		if s.src != "" {
			src = netip.MustParseAddr(s.src)
		}
		dst := svc.Addr
		if s.dst != "" {
			dst = netip.MustParseAddr(s.dst)
		}
		p := Packet{Proto: TCP, Src: src, SrcPort: uint16(40000 + i), Dst: dst, DstPort: 80}
		// Candidates must agree with what Schedule then does.
		cands := st.Candidates(svc, p)
		c, err := st.ScheduleOn(svc, p, ConnectOptions{})
		var name string
		if err == nil {
			name = nameOf(c.Dest())
			open[name] = append(open[name], c)
		} else if !errors.As(err, new(*NoDestError)) {
			t.Fatal(err)
		}
		if sched.Deterministic() {
			cn := ""
			if len(cands) == 1 {
				cn = nameOf(cands[0].Dest)
			}
			if cn != name {
				t.Errorf("step %d: Candidates said %q, Schedule picked %q", i, cn, name)
			}
		}
		got = append(got, name)
		want = append(want, s.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s sequence (-want +got):\n%s", sched, diff)
	}
}

func picks(names ...string) []step {
	out := make([]step, len(names))
	for i, n := range names {
		out[i] = step{want: n}
	}
	return out
}

func TestSchedulerSequences(t *testing.T) {
	tests := []struct {
		name  string
		sched Scheduler
		flags Flags
		dests []dspec // added in this order; the kernel list is the reverse
		steps []step
	}{
		{
			// list C,B,A: rr walks the list from the head; a server added later goes to
			// the head and is reached after the wrap.
			name: "rr walks the kernel list, new server at head", sched: RoundRobin,
			dests: []dspec{{"A", 1}, {"B", 1}, {"C", 1}},
			steps: append(picks("C", "B"), step{do: "add:D:1"}, step{want: "A"}, step{want: "D"},
				step{want: "C"}, step{want: "B"}),
		},
		{
			name: "rr skips weight 0", sched: RoundRobin,
			dests: []dspec{{"A", 1}, {"B", 1}, {"C", 1}},
			steps: append(picks("C"), step{do: "weight:B:0"}, step{want: "A"}, step{want: "C"}, step{want: "A"}),
		},
		{
			// Servers are added one by one, as kube-proxy does: adding A(4) gives di 4,
			// mw 1, cw 1; adding B(2) gives di 2, mw 4-(2-1) = 3 and keeps cw at
			// (1/2)*2+1 = 1. List B(2),A(4): cw 1 -> B, A; cw -1 -> reset to 3 -> A; ...
			name: "wrr 4:2 gcd stepping", sched: WeightedRoundRobin,
			dests: []dspec{{"A", 4}, {"B", 2}},
			steps: picks("B", "A", "A", "B", "A", "A", "B", "A", "A"),
		},
		{
			// Added A(3),B(2),C(1): cw stays 1 (di 1, mw 3). List C(1),B(2),A(3):
			// cw 1 -> C, B, A; cw 0 -> reset to 3 -> A; cw 2 -> B, A; cw 1 -> C, B, A ...
			name: "wrr 3:2:1", sched: WeightedRoundRobin,
			dests: []dspec{{"A", 3}, {"B", 2}, {"C", 1}},
			steps: picks("C", "B", "A", "A", "B", "A", "C", "B", "A", "A", "B", "A"),
		},
		{
			// overhead = active<<8 + inactive; ties go to the first in list order.
			name: "lc overhead and tie-break", sched: LeastConnection,
			dests: []dspec{{"A", 1}, {"B", 1}, {"C", 1}},
			steps: append(picks("C", "B", "A", "C"), step{do: "close:B"}, step{want: "B"}),
		},
		{
			// list B(2),A(1): loh*dw > doh*lw switches.
			name: "wlc weights", sched: WeightedLeastConnection,
			dests: []dspec{{"A", 1}, {"B", 2}},
			steps: picks("B", "A", "B", "B", "A"),
		},
		{
			name: "sed (active+1)/weight", sched: ShortestExpectedDelay,
			dests: []dspec{{"A", 1}, {"B", 2}},
			steps: picks("B", "B", "A", "B", "B", "A"),
		},
		{
			name: "nq idle first", sched: NeverQueue,
			dests: []dspec{{"A", 1}, {"B", 2}},
			steps: picks("B", "A", "B", "B", "B", "A"),
		},
		{
			name: "fo highest weight, first in list", sched: WeightedFailover,
			dests: []dspec{{"A", 1}, {"B", 3}, {"C", 3}},
			steps: append(picks("C", "C"), step{do: "weight:C:0"}, step{want: "B"}),
		},
		{
			// ovf keeps C while active <= weight (0..3 active -> 4 conns), then B.
			name: "ovf overflow to next", sched: WeightedOverflow,
			dests: []dspec{{"A", 1}, {"B", 3}, {"C", 3}},
			steps: picks("C", "C", "C", "C", "B"),
		},
		{
			// same destination sticks until the server is overloaded relative to others.
			name: "lblc locality", sched: LocalityLeastConnection,
			dests: []dspec{{"A", 1}, {"B", 1}},
			steps: []step{{want: "B"}, {want: "B"}, {want: "A"}, {want: "A", dst: "10.96.0.10"}},
		},
		{
			name: "lblcr grows the set", sched: LocalityLeastConnectionRp,
			dests: []dspec{{"A", 1}, {"B", 1}},
			steps: picks("B", "B", "A", "A"),
		},
		{
			// dh table: bucket i -> list[i % n]; list B,A; hash_32(10.96.0.10) picks.
			name: "dh by destination", sched: DestinationHashing,
			dests: []dspec{{"A", 1}, {"B", 1}},
			steps: []step{{want: dhWant("10.96.0.10", "B", "A")}, {want: dhWant("10.96.0.10", "B", "A")}},
		},
		{
			// sh buckets: list B(2),A(1) -> B,B,A,B,B,A,...; 192.168.1.2 -> bucket 0xea=234,
			// 234%3 = 0 -> B. 10.0.0.1 -> bucket 0x27=39, 39%3=0 -> B; 10.0.0.3 -> computed.
			name: "sh weighted buckets", sched: SourceHashing,
			dests: []dspec{{"A", 1}, {"B", 2}},
			steps: []step{{want: "B"}, {want: "B"}, {want: "B", src: "10.0.0.1"},
				{want: shWant("10.0.0.2", []string{"B", "B", "A"}), src: "10.0.0.2"},
				{want: shWant("10.0.0.3", []string{"B", "B", "A"}), src: "10.0.0.3"}},
		},
		{
			name: "sh without fallback fails on quiesced server", sched: SourceHashing,
			dests: []dspec{{"A", 1}, {"B", 1}},
			steps: []step{{do: "weight:" + shWant("192.168.1.2", []string{"B", "A"}) + ":0"}, {want: ""}},
		},
		{
			name: "sh-fallback finds another server", sched: SourceHashing, flags: FlagSHFallback,
			dests: []dspec{{"A", 1}, {"B", 1}},
			steps: []step{{do: "weight:" + shWant("192.168.1.2", []string{"B", "A"}) + ":0"},
				{want: other(shWant("192.168.1.2", []string{"B", "A"}))}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runSequence(t, tc.sched, tc.flags, tc.dests, tc.steps) })
	}
}

func other(n string) string {
	if n == "A" {
		return "B"
	}
	return "A"
}

// shWant works the sh bucket out independently of SHBucket: hash_32 by hand.
func shWant(src string, pattern []string) string {
	a := netip.MustParseAddr(src).As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	bucket := (v * 0x61C88647) >> 24
	return pattern[int(bucket)%len(pattern)]
}

func dhWant(dst string, list ...string) string {
	return shWant(dst, list)
}

func TestHash32Constants(t *testing.T) {
	// Worked with the GOLDEN_RATIO_32 multiply by hand (python: (x*0x61C88647 & 0xffffffff) >> 24).
	tests := []struct {
		src  string
		port uint16
		want int
	}{
		{"10.0.0.1", 0, 0x27},
		{"10.0.0.1", 80, 0xb6},
		{"192.168.1.2", 0, 0xea},
	}
	for _, tc := range tests {
		if got := SHBucket(netip.MustParseAddr(tc.src), tc.port, 0); got != tc.want {
			t.Errorf("SHBucket(%s, %d) = %#x, want %#x", tc.src, tc.port, got, tc.want)
		}
	}
}

func TestSipHashVectors(t *testing.T) {
	// Reference vectors of SipHash-2-4 (Aumasson & Bernstein, key 00..0f); HSipHash32 uses
	// the same core with 1 compression and 3 finalisation rounds.
	k0, k1 := uint64(0x0706050403020100), uint64(0x0f0e0d0c0b0a0908)
	msg := make([]byte, 15)
	for i := range msg {
		msg[i] = byte(i)
	}
	tests := []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{15, 0xa129ca6149be45e5},
	}
	for _, tc := range tests {
		if got := sipHash(2, 4, k0, k1, msg[:tc.n]); got != tc.want {
			t.Errorf("SipHash-2-4 of %d bytes = %#x, want %#x", tc.n, got, tc.want)
		}
	}
}

func TestMaglevTable(t *testing.T) {
	st := New()
	svc := &Service{Protocol: TCP, Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Scheduler: MaglevHashing}
	if err := st.AddService(svc); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"A", "B", "C"} {
		if err := st.AddDest(svc, &Dest{Addr: addrOf(n), Port: 8080, Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() map[string]int {
		m := map[string]int{}
		for _, d := range svc.sched.(*mhState).lookup {
			m[nameOf(d)]++
		}
		return m
	}
	// 4093 slots, one turn each per round in list order C,B,A: 1364 full rounds + C.
	if diff := cmp.Diff(map[string]int{"C": 1365, "B": 1364, "A": 1364}, count()); diff != "" {
		t.Errorf("mh slot counts (-want +got):\n%s", diff)
	}
	before := svc.sched.(*mhState).lookup
	// Weight 2:1:1 -> turns 2,1,1 per round.
	if err := st.EditDest(svc, svc.Dest(addrOf("A"), 8080), 2, 0, 0); err != nil {
		t.Fatal(err)
	}
	c := count()
	if c["A"] < 2*c["B"]-2 || c["A"] > 2*c["B"]+2 {
		t.Errorf("mh weight 2 server got %d slots vs %d for weight 1", c["A"], c["B"])
	}
	// Quiescing keeps table slots (last_weight), so the lookup fails without fallback.
	if err := st.EditDest(svc, svc.Dest(addrOf("A"), 8080), 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := svc.sched.(*mhState).lookup; got != before {
		t.Errorf("mh table not restored after weight returned to 1")
	}
	// Removing a server moves only its slots and a few others (Maglev's minimal disruption).
	if err := st.DelDest(svc, svc.Dest(addrOf("C"), 8080)); err != nil {
		t.Fatal(err)
	}
	moved := 0
	after := svc.sched.(*mhState).lookup
	for i := range before {
		if nameOf(before[i]) != "C" && nameOf(before[i]) != nameOf(after[i]) {
			moved++
		}
	}
	if moved > MHTabSize/4 {
		t.Errorf("mh: %d slots of surviving servers moved after a removal", moved)
	}
	// The hsiphash keys are constants in ip_vs_mh.c: the same source always maps the same.
	p := Packet{Proto: TCP, Src: netip.MustParseAddr("192.168.1.2"), SrcPort: 1, Dst: svc.Addr, DstPort: 80}
	first := st.Candidates(svc, p)
	for i := 0; i < 5; i++ {
		if got := st.Candidates(svc, p); got[0].Dest != first[0].Dest {
			t.Fatalf("mh not deterministic")
		}
	}
}

func TestTwosDistribution(t *testing.T) {
	st := New()
	st.Rand = NewPCG(42)
	svc := &Service{Protocol: TCP, Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Scheduler: PowerOfTwoChoices}
	if err := st.AddService(svc); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"A", "B"} {
		if err := st.AddDest(svc, &Dest{Addr: addrOf(n), Port: 8080, Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Hand-worked: total 2, r in [0,2]; r=0 or 1 -> list head B, r=2 -> A. With equal
	// load choice1 wins, so B has probability 2/3: twos favours the list head when idle.
	got := map[string]float64{}
	for _, c := range st.Candidates(svc, Packet{}) {
		got[nameOf(c.Dest)] = c.Probability
	}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })
	if diff := cmp.Diff(map[string]float64{"B": 2.0 / 3, "A": 1.0 / 3}, got, approx); diff != "" {
		t.Errorf("twos distribution (-want +got):\n%s", diff)
	}
	// Draws match the distribution (no state change: UDP-free, closed immediately).
	n := 30000
	hits := map[string]int{}
	for i := 0; i < n; i++ {
		c, err := st.ScheduleOn(svc, Packet{Proto: TCP, Src: netip.MustParseAddr("192.168.1.2"), SrcPort: uint16(i), Dst: svc.Addr, DstPort: 80}, ConnectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hits[nameOf(c.Dest())]++
		st.Close(c)
		st.Advance(st.Conns.Now + time.Hour)
	}
	if f := float64(hits["B"]) / float64(n); math.Abs(f-2.0/3) > 0.02 {
		t.Errorf("twos draws: B share %.3f, want about 0.667", f)
	}
}

func TestPersistence(t *testing.T) {
	st := New()
	st.Sysctls.ExpireQuiescentTemplate = true
	svc := &Service{Protocol: TCP, Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Scheduler: RoundRobin,
		Flags: FlagPersistent, Timeout: 10800}
	if err := st.AddService(svc); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"A", "B"} {
		if err := st.AddDest(svc, &Dest{Addr: addrOf(n), Port: 8080, Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	conn := func(src string, port uint16) *Conn {
		t.Helper()
		c, err := st.Schedule(Packet{Proto: TCP, Src: netip.MustParseAddr(src), SrcPort: port, Dst: svc.Addr, DstPort: 80}, ConnectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := conn("192.168.1.2", 1000)
	c2 := conn("192.168.1.2", 1001)
	c3 := conn("192.168.1.3", 1000)
	got := []string{nameOf(c1.Dest()), nameOf(c2.Dest()), nameOf(c3.Dest())}
	if diff := cmp.Diff([]string{"B", "B", "A"}, got); diff != "" {
		t.Errorf("persistent picks (-want +got):\n%s", diff)
	}
	b := svc.Dest(addrOf("B"), 8080)
	if b.PersistConns != 1 || b.ActiveConns != 2 {
		t.Errorf("B counters: persist %d active %d, want 1 and 2", b.PersistConns, b.ActiveConns)
	}
	// The template outlives its timeout while it controls connections.
	st.Advance(800 * time.Second) // connections (900 s) still alive
	st.Advance(3 * time.Hour)     // connections expired at 900 s; template re-armed then expires
	if b.PersistConns != 0 || b.ActiveConns != 0 {
		t.Errorf("after expiry: persist %d active %d", b.PersistConns, b.ActiveConns)
	}
	if n := st.Conns.Len(); n != 0 {
		t.Errorf("table has %d entries after everything expired", n)
	}
	// rr continues after A: the next new client goes to B.
	if c := conn("192.168.1.9", 1); nameOf(c.Dest()) != "B" {
		t.Errorf("after expiry new client went to %s", nameOf(c.Dest()))
	}
}

func TestThresholdOverload(t *testing.T) {
	st := New()
	svc := &Service{Protocol: TCP, Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Scheduler: RoundRobin}
	if err := st.AddService(svc); err != nil {
		t.Fatal(err)
	}
	a := &Dest{Addr: addrOf("A"), Port: 80, Weight: 1, UpperThreshold: 2}
	if err := st.AddDest(svc, a); err != nil {
		t.Fatal(err)
	}
	var cs []*Conn
	for i := 0; i < 3; i++ {
		c, err := st.Schedule(Packet{Proto: TCP, Src: netip.MustParseAddr("192.168.1.2"), SrcPort: uint16(i + 1), Dst: svc.Addr, DstPort: 80}, ConnectOptions{})
		if i < 2 && err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		if i == 2 {
			var nd *NoDestError
			if !errors.As(err, &nd) {
				t.Fatalf("conn 3 over the upper threshold: err %v, want NoDestError", err)
			}
		}
		if c != nil {
			cs = append(cs, c)
		}
	}
	// Below 3/4 of the upper threshold the mark clears: 1*4 < 2*3.
	st.Close(cs[0])
	st.Advance(st.Conns.Now + 121*time.Second)
	if a.Overloaded {
		t.Errorf("overload mark not cleared at %d connections", a.ActiveConns+a.InactConns)
	}
}

func TestLookup(t *testing.T) {
	st := New()
	vip := netip.MustParseAddr("10.96.0.10")
	for _, s := range []*Service{
		{Protocol: TCP, Addr: vip, Port: 53, Scheduler: RoundRobin},
		{Protocol: UDP, Addr: vip, Port: 53, Scheduler: RoundRobin},
		{FWMark: 7, Scheduler: RoundRobin},
	} {
		if err := st.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		proto  Protocol
		port   uint16
		fwmark uint32
		want   string
	}{
		{TCP, 53, 0, "tcp 10.96.0.10:53"},
		{UDP, 53, 0, "udp 10.96.0.10:53"},
		{TCP, 80, 0, ""},
		{TCP, 80, 7, "fwmark 7"},
		{SCTP, 53, 0, ""},
	}
	for _, tc := range tests {
		got := ""
		if s := st.Lookup(tc.proto, vip, tc.port, tc.fwmark); s != nil {
			got = s.String()
		}
		if got != tc.want {
			t.Errorf("Lookup(%s, %d, %d) = %q, want %q", tc.proto, tc.port, tc.fwmark, got, tc.want)
		}
	}
	if err := st.AddService(&Service{Protocol: TCP, Addr: vip, Port: 53}); err == nil {
		t.Error("duplicate service accepted")
	}
}
