//go:build linux

package lab

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkUpDown measures building and removing the whole cluster-b lab (VXLAN variant,
// natively: 6 node, 10 pod, fabric, router and outside namespaces).
func BenchmarkUpDown(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	c := vxlanVariant(b)
	c.Name = "labbench"
	if m := Missing(c); len(m) > 0 {
		b.Skipf("host kernel lacks %v", m)
	}
	Cleanup(Prefix(c.Name))
	for b.Loop() {
		l, err := Up(context.Background(), c, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Down(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnection measures one HTTP connection pod → ClusterIP through the lab
// (kube-proxy iptables DNAT, VXLAN across subnets, the pod's server).
func BenchmarkConnection(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	c := vxlanVariant(b)
	c.Name = "labbench"
	if m := Missing(c); len(m) > 0 {
		b.Skipf("host kernel lacks %v", m)
	}
	Cleanup(Prefix(c.Name))
	l, err := Up(context.Background(), c, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Down()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	go l.Serve(ctx, ready)
	<-ready
	f := SeedFlows(c, 1, 0, 1)[0]
	nsKey, _, err := l.clientNS(f.From)
	if err != nil {
		b.Fatal(err)
	}
	ns := l.nsByKey[nsKey]
	b.ResetTimer()
	for b.Loop() {
		if _, err := Dial(ctx, ns, f.Kind, f.To, 2*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
