package ipvsadm

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/dataplane/ipvs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sample builds a kube-proxy-like IPVS state through the model's mutators.
func sample(t testing.TB) *ipvs.State {
	t.Helper()
	st := ipvs.New()
	add := func(s *ipvs.Service, dests ...*ipvs.Dest) *ipvs.Service {
		if err := st.AddService(s); err != nil {
			t.Fatal(err)
		}
		for _, d := range dests {
			if err := st.AddDest(s, d); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	ip := netip.MustParseAddr
	add(&ipvs.Service{Protocol: ipvs.TCP, Addr: ip("10.96.0.1"), Port: 443, Scheduler: ipvs.RoundRobin},
		&ipvs.Dest{Addr: ip("192.168.1.101"), Port: 6443, Weight: 1})
	dns := add(&ipvs.Service{Protocol: ipvs.UDP, Addr: ip("10.96.0.10"), Port: 53, Scheduler: ipvs.RoundRobin},
		&ipvs.Dest{Addr: ip("10.244.1.3"), Port: 53, Weight: 1},
		&ipvs.Dest{Addr: ip("10.244.0.2"), Port: 53, Weight: 1})
	add(&ipvs.Service{Protocol: ipvs.TCP, Addr: ip("10.96.0.10"), Port: 53, Scheduler: ipvs.RoundRobin, Flags: ipvs.FlagPersistent, Timeout: 10800},
		&ipvs.Dest{Addr: ip("10.244.1.3"), Port: 53, Weight: 1},
		&ipvs.Dest{Addr: ip("10.244.0.2"), Port: 53, Weight: 1})
	// a public LoadBalancer VIP: 192.x - 10.x overflows int and sorts first (libipvs).
	lb := add(&ipvs.Service{Protocol: ipvs.TCP, Addr: ip("192.168.10.240"), Port: 80, Scheduler: ipvs.SourceHashing, Flags: ipvs.FlagSHFallback | ipvs.FlagSHPort},
		&ipvs.Dest{Addr: ip("10.244.2.7"), Port: 8080, Weight: 3},
		&ipvs.Dest{Addr: ip("10.244.1.9"), Port: 8080, Weight: 0, Forward: ipvs.Route})
	add(&ipvs.Service{Protocol: ipvs.SCTP, Addr: ip("10.96.5.5"), Port: 9999, Scheduler: ipvs.MaglevHashing, Flags: ipvs.FlagMHPort | ipvs.FlagPersistent, Timeout: 60, NetmaskBits: 24},
		&ipvs.Dest{Addr: ip("10.244.3.3"), Port: 9999, Weight: 1, Forward: ipvs.Tunnel})
	add(&ipvs.Service{FWMark: 100, Scheduler: ipvs.WeightedLeastConnection, Flags: ipvs.FlagOnePacket | ipvs.FlagSched3},
		&ipvs.Dest{Addr: ip("10.244.3.4"), Port: 0, Weight: 2, UpperThreshold: 100, LowerThreshold: 50})
	add(&ipvs.Service{Protocol: ipvs.TCP, Addr: ip("fd00::a"), Port: 443, Scheduler: ipvs.WeightedRoundRobin},
		&ipvs.Dest{Addr: ip("fd00:10:244::5"), Port: 8443, Weight: 1})
	// traffic: counters, stats and connections
	for i := 0; i < 3; i++ {
		if _, err := st.Schedule(ipvs.Packet{Proto: ipvs.UDP, Src: ip("10.244.0.5"), SrcPort: uint16(33000 + i), Dst: ip("10.96.0.10"), DstPort: 53}, ipvs.ConnectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := st.Schedule(ipvs.Packet{Proto: ipvs.TCP, Src: ip("10.244.0.5"), SrcPort: 40000, Dst: ip("10.96.0.10"), DstPort: 53}, ipvs.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Conns.Now = 5 * time.Second
	st.Close(c)
	if _, err := st.Schedule(ipvs.Packet{Proto: ipvs.TCP, Src: ip("203.0.113.9"), SrcPort: 51000, Dst: ip("192.168.10.240"), DstPort: 80}, ipvs.ConnectOptions{SynOnly: true}); err != nil {
		t.Fatal(err)
	}
	st.Conns.Now = 65 * time.Second
	dns.Stats = ipvs.Stats{Conns: 3, InPkts: 99999999, OutPkts: 100000000, InBytes: 123456789012, OutBytes: 987654321098765,
		CPS: 1, InPPS: 2, OutPPS: 3, InBPS: 1500000000, OutBPS: 40}
	dns.Dests[0].Stats = ipvs.Stats{Conns: 2, InPkts: 10, OutPkts: 10, InBytes: 1000, OutBytes: 2000, InBPS: 100000000}
	lb.Stats.Conns = 1
	return st
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestGolden(t *testing.T) {
	st := sample(t)
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"sample.ipvsadm-Ln", func(b *bytes.Buffer) error { return WriteList(b, st, ListOptions{}) }},
		{"sample.ipvsadm-Ln-stats", func(b *bytes.Buffer) error { return WriteList(b, st, ListOptions{View: ViewStats}) }},
		{"sample.ipvsadm-Ln-stats-exact", func(b *bytes.Buffer) error {
			return WriteList(b, st, ListOptions{View: ViewStats, Exact: true})
		}},
		{"sample.ipvsadm-Ln-rate", func(b *bytes.Buffer) error { return WriteList(b, st, ListOptions{View: ViewRate}) }},
		{"sample.ipvsadm-Ln-thresholds", func(b *bytes.Buffer) error { return WriteList(b, st, ListOptions{View: ViewThresholds}) }},
		{"sample.ipvsadm-Ln-persistent-conn", func(b *bytes.Buffer) error {
			return WriteList(b, st, ListOptions{View: ViewPersistentConn})
		}},
		{"sample.ipvsadm-Lnc", func(b *bytes.Buffer) error { return WriteConns(b, st, false) }},
		{"sample.ipvsadm-save", func(b *bytes.Buffer) error { return WriteSave(b, st) }},
		{"sample.ipvsadm-timeout", func(b *bytes.Buffer) error { return WriteTimeout(b, st) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
			// Parsing what we print and printing again gives the same bytes.
			d, err := Parse(tc.name, b.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Skipped) != 0 {
				t.Fatalf("round trip skipped lines: %v", d.Skipped)
			}
			var again bytes.Buffer
			switch d.Kind {
			case KindList:
				if d.View == ViewStats || d.View == ViewRate || d.View == ViewThresholds || d.View == ViewPersistentConn {
					err = WriteList(&again, d.State, ListOptions{View: d.View, Exact: strings.Contains(tc.name, "exact")})
				} else {
					err = WriteList(&again, d.State, ListOptions{})
				}
			case KindConns:
				d.State.Conns.Now = 0
				err = WriteConns(&again, d.State, false)
			case KindSave:
				err = WriteSave(&again, d.State)
			case KindTimeout:
				err = WriteTimeout(&again, d.State)
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Approximate {
				return // K/M/G scaled numbers do not round-trip exactly
			}
			if diff := cmp.Diff(b.String(), again.String()); diff != "" {
				t.Errorf("print(parse(x)) != x (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReferenceDump parses the ipvsadm -ln sample of reference/cni.md §4.4 (with its
// trailing spaces) and prints it back byte for byte.
func TestReferenceDump(t *testing.T) {
	in, err := os.ReadFile("testdata/cni-ref.ipvsadm-Ln")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse("cni-ref.ipvsadm-Ln", in)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Skipped) != 0 {
		t.Fatalf("skipped: %v", d.Skipped)
	}
	var out bytes.Buffer
	if err := WriteList(&out, d.State, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(in), out.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLargenum(t *testing.T) {
	tests := []struct {
		v     uint64
		exact bool
		want  string
	}{
		{0, false, "        0"},
		{99999999, false, " 99999999"},
		{100000000, false, "  100000K"},
		{999999999, false, "  999999K"},
		{1000000000, false, "     1000M"[1:]},
		{99999999999, false, "   99999M"},
		{100000000000, false, "      100G"[1:]},
		{100000000000000, false, "      100T"[1:]},
		{123456789, true, " 123456789"},
		{12, true, "       12"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		largenum(&b, tc.v, tc.exact)
		if b.String() != tc.want {
			t.Errorf("largenum(%d, exact=%v) = %q, want %q", tc.v, tc.exact, b.String(), tc.want)
		}
	}
}

func TestSignedDifferenceMisSort(t *testing.T) {
	st := ipvs.New()
	for _, a := range []string{"10.96.0.1", "192.168.10.240", "10.96.0.10", "172.16.0.1"} {
		if err := st.AddService(&ipvs.Service{Protocol: ipvs.TCP, Addr: netip.MustParseAddr(a), Port: 80, Scheduler: ipvs.RoundRobin}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, s := range services(st, false) {
		got = append(got, s.Addr.String())
	}
	// Worked through glibc's merge sort on the creation order:
	// [10.96.0.1 192.168.10.240] -> 0x0A600001-0xC0A80AF0 = 0x49B7F511 > 0 -> [192.. 10.96.0.1]
	// [10.96.0.10 172.16.0.1] -> 0x0A60000A-0xAC100001 = 0x5E500009 > 0 -> [172.. 10.96.0.10]
	// merge: 192-172 = 0x14980AEF > 0 -> 172; 192-10.96.0.10 = 0xB6480AE6 < 0 -> 192; then
	// the two 10.96 addresses. Both public-range VIPs print before the 10.x ClusterIPs.
	want := []string{"172.16.0.1", "192.168.10.240", "10.96.0.1", "10.96.0.10"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ipvsadm order (-want +got):\n%s", diff)
	}
}

func TestParseDiagnostics(t *testing.T) {
	in := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"  -> 10.0.0.1:80                  Masq    1      0          0\n" +
		"TCP  kubernetes.default:https rr\n" +
		"TCP  10.96.0.1:443 bogus\n" +
		"TCP  10.96.0.2:443 rr\n" +
		"  -> 10.0.0.2:80                  Masq    x      0          0\n" +
		"  -> 10.0.0.3:80                  Masq    1      4          2\n"
	d, err := Parse("dump.txt", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, s := range d.Skipped {
		lines = append(lines, s.Line)
		if s.File != "dump.txt" || s.Reason == "" {
			t.Errorf("diagnostic without file or reason: %+v", s)
		}
	}
	if diff := cmp.Diff([]int{4, 5, 6, 8}, lines); diff != "" {
		t.Errorf("skipped lines (-want +got):\n%s", diff)
	}
	svc := d.State.Service(ipvs.TCP, netip.MustParseAddr("10.96.0.2"), 443)
	if svc == nil || len(svc.Dests) != 1 || svc.Dests[0].ActiveConns != 4 || svc.Dests[0].InactConns != 2 {
		t.Errorf("service 10.96.0.2:443 not parsed with its real server: %+v", svc)
	}
	if _, err := Parse("x", []byte("hello\n")); err == nil || !strings.Contains(err.Error(), "x:1:") {
		t.Errorf("non-dump error = %v, want file:line", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"cni-ref.ipvsadm-Ln", "sample.ipvsadm-Ln", "sample.ipvsadm-Ln-stats", "sample.ipvsadm-Lnc", "sample.ipvsadm-save", "sample.ipvsadm-Ln-rate", "sample.ipvsadm-timeout"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		var b bytes.Buffer
		switch d.Kind {
		case KindList:
			err = WriteList(&b, d.State, ListOptions{View: d.View})
		case KindConns:
			err = WriteConns(&b, d.State, false)
		case KindSave:
			err = WriteSave(&b, d.State)
		case KindTimeout:
			err = WriteTimeout(&b, d.State)
		}
		if err != nil {
			t.Fatal(err)
		}
		// what we print must parse cleanly and print the same again
		d2, err := Parse("fuzz2", b.Bytes())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, b.String())
		}
		if len(d2.Skipped) != 0 {
			t.Fatalf("re-parse skipped %v\n%s", d2.Skipped, b.String())
		}
	})
}
