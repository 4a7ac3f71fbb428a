package ipset

import (
	"net/netip"
	"testing"
)

func TestMatch(t *testing.T) {
	ss := New()
	ip := netip.MustParseAddr
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	m := func(f func(*Member)) Member { x := NewMember(); f(&x); return x }
	must(ss.Create(&Set{Name: "CIP", Type: HashIPPort}))
	must(ss.Add("CIP", m(func(x *Member) { x.IP, x.Proto, x.Port = ip("10.96.0.10"), "udp", 53 })))
	must(ss.Create(&Set{Name: "LOOP", Type: HashIPPortIP}))
	must(ss.Add("LOOP", m(func(x *Member) { x.IP, x.Proto, x.Port, x.IP2 = ip("10.244.1.3"), "tcp", 53, ip("10.244.1.3") })))
	must(ss.Create(&Set{Name: "CIDR", Type: HashIPPortNet}))
	must(ss.Add("CIDR", m(func(x *Member) {
		x.IP, x.Proto, x.Port, x.Net = ip("192.168.10.240"), "tcp", 80, netip.MustParsePrefix("203.0.113.0/24")
	})))
	must(ss.Create(&Set{Name: "NETS", Type: HashNet}))
	must(ss.Add("NETS", m(func(x *Member) { x.Net = netip.MustParsePrefix("10.0.0.0/8") })))
	must(ss.Add("NETS", m(func(x *Member) { x.Net, x.NoMatch = netip.MustParsePrefix("10.1.0.0/16"), true })))
	must(ss.Create(&Set{Name: "NP", Type: BitmapPort, RangeTo: 65535}))
	must(ss.Add("NP", m(func(x *Member) { x.Port = 30080 })))
	must(ss.Create(&Set{Name: "IPS", Type: HashIP}))
	must(ss.Add("IPS", m(func(x *Member) { x.IP = ip("10.96.0.1") })))
	must(ss.Create(&Set{Name: "L", Type: ListSet}))
	must(ss.Add("L", m(func(x *Member) { x.SetName = "IPS" })))
	must(ss.Add("L", m(func(x *Member) { x.SetName = "NETS" })))

	pkt := func(src string, sport uint16, dst string, dport uint16, proto string) Packet {
		return Packet{Src: ip(src), SrcPort: sport, Dst: ip(dst), DstPort: dport, Proto: proto}
	}
	tests := []struct {
		set  string
		dirs string
		p    Packet
		want bool
	}{
		{"CIP", "dst,dst", pkt("10.244.0.5", 40000, "10.96.0.10", 53, "udp"), true},
		{"CIP", "dst,dst", pkt("10.244.0.5", 40000, "10.96.0.10", 53, "tcp"), false}, // protocol is part of the element
		{"CIP", "src,dst", pkt("10.244.0.5", 40000, "10.96.0.10", 53, "udp"), false},
		{"CIP", "dst,dst", pkt("10.244.0.5", 40000, "10.96.0.10", 53, "icmp"), false},
		{"LOOP", "dst,dst,src", pkt("10.244.1.3", 5555, "10.244.1.3", 53, "tcp"), true}, // hairpin
		{"LOOP", "dst,dst,src", pkt("10.244.1.4", 5555, "10.244.1.3", 53, "tcp"), false},
		{"CIDR", "dst,dst,src", pkt("203.0.113.77", 1, "192.168.10.240", 80, "tcp"), true},
		{"CIDR", "dst,dst,src", pkt("198.51.100.1", 1, "192.168.10.240", 80, "tcp"), false},
		{"NETS", "src", pkt("10.2.3.4", 1, "1.1.1.1", 1, "tcp"), true},
		{"NETS", "src", pkt("10.1.3.4", 1, "1.1.1.1", 1, "tcp"), false}, // most specific is nomatch
		{"NETS", "src", pkt("11.0.0.1", 1, "1.1.1.1", 1, "tcp"), false},
		{"NP", "dst", pkt("1.1.1.1", 1, "192.168.1.10", 30080, "tcp"), true},
		{"NP", "dst", pkt("1.1.1.1", 1, "192.168.1.10", 30081, "tcp"), false},
		{"NP", "src", pkt("1.1.1.1", 30080, "192.168.1.10", 1, "udp"), true},
		{"IPS", "dst", pkt("1.1.1.1", 1, "10.96.0.1", 1, "icmp"), true},
		{"L", "dst", pkt("1.1.1.1", 1, "10.96.0.1", 1, "tcp"), true},
		{"L", "src", pkt("10.5.5.5", 1, "1.1.1.1", 1, "tcp"), true},
		{"L", "src", pkt("192.0.2.1", 1, "1.1.1.1", 1, "tcp"), false},
	}
	for _, tc := range tests {
		dirs, err := ParseDirs(tc.dirs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ss.Test(tc.set, dirs, tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Test(%s %s, %+v) = %v, want %v", tc.set, tc.dirs, tc.p, got, tc.want)
		}
	}
	if _, err := ss.Test("CIP", []Dir{Dst}, Packet{}); err == nil {
		t.Error("hash:ip,port with one direction accepted")
	}
	if err := ss.Add("NP", m(func(x *Member) { x.Port = 30080 })); err == nil {
		t.Error("duplicate element accepted")
	}
	if err := ss.Add("IPS", m(func(x *Member) { x.IP = ip("fd00::1") })); err == nil {
		t.Error("IPv6 element in an inet set accepted")
	}
}
