package ipvs

import (
	"net/netip"
	"testing"
	"time"
)

func benchService(b *testing.B, sched Scheduler, n int) (*State, *Service) {
	st := New()
	svc := &Service{Protocol: TCP, Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Scheduler: sched}
	if err := st.AddService(svc); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		w := 1
		if sched == WeightedRoundRobin {
			w = 1 + i%3
		}
		if err := st.AddDest(svc, &Dest{Addr: netip.AddrFrom4([4]byte{10, 244, byte(i / 250), byte(1 + i%250)}), Port: 8080, Weight: w}); err != nil {
			b.Fatal(err)
		}
	}
	return st, svc
}

// benchSchedule measures a full new connection: scheduler pick, connection table entry,
// counters; the clock jumps every 4096 connections so the table stays bounded.
func benchSchedule(b *testing.B, sched Scheduler) {
	st, svc := benchService(b, sched, 10)
	p := Packet{Proto: TCP, Dst: svc.Addr, DstPort: 80}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Src = netip.AddrFrom4([4]byte{100, 64, byte(i >> 16), byte(i >> 8)})
		p.SrcPort = uint16(i)
		if _, err := st.ScheduleOn(svc, p, ConnectOptions{}); err != nil {
			b.Fatal(err)
		}
		if i&4095 == 4095 {
			st.Advance(st.Conns.Now + time.Hour)
		}
	}
}

func BenchmarkScheduleRR(b *testing.B)  { benchSchedule(b, RoundRobin) }
func BenchmarkScheduleWRR(b *testing.B) { benchSchedule(b, WeightedRoundRobin) }
func BenchmarkScheduleSH(b *testing.B)  { benchSchedule(b, SourceHashing) }
func BenchmarkScheduleWLC(b *testing.B) { benchSchedule(b, WeightedLeastConnection) }
func BenchmarkScheduleMH(b *testing.B)  { benchSchedule(b, MaglevHashing) }

// benchPick measures the scheduler decision alone.
func benchPick(b *testing.B, sched Scheduler) {
	st, svc := benchService(b, sched, 10)
	p := Packet{Proto: TCP, Dst: svc.Addr, DstPort: 80}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Src = netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		if svc.sched.schedule(st, svc, &p) == nil {
			b.Fatal("no destination")
		}
	}
}

func BenchmarkSchedulePickRR(b *testing.B)  { benchPick(b, RoundRobin) }
func BenchmarkSchedulePickWRR(b *testing.B) { benchPick(b, WeightedRoundRobin) }
func BenchmarkSchedulePickSH(b *testing.B)  { benchPick(b, SourceHashing) }
func BenchmarkSchedulePickMH(b *testing.B)  { benchPick(b, MaglevHashing) }
