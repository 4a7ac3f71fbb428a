//go:build linux

package kernel

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newTestNS makes a named namespace for one test and removes it afterwards, skipping
// (with the reason) when this process may not create namespaces.
func newTestNS(t *testing.T) *NS {
	t.Helper()
	name := fmt.Sprintf("knet-test-%d-%s", os.Getpid(), t.Name())
	if len(name) > 60 {
		name = name[:60]
	}
	ns, err := NewNS(name)
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("creating a network namespace needs root (CAP_SYS_ADMIN): %v", err)
		}
		t.Fatalf("NewNS(%q): %v", name, err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("Delete: %v", err)
		}
	})
	return ns
}

func TestNSDoIsolates(t *testing.T) {
	host, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	ns := newTestNS(t)

	var inside netns.NsHandle
	err = ns.Do(func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		inside = cur
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "kt0"}, PeerName: "kt1"})
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer inside.Close()
	if !inside.Equal(ns.Handle()) {
		t.Errorf("Do ran in %v, want the namespace %v", inside, ns.Handle())
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(host) {
		t.Errorf("caller's namespace changed")
	}
	h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.LinkByName("kt0"); err != nil {
		t.Errorf("veth made inside Do not found in the namespace: %v", err)
	}
	if _, err := netlink.LinkByName("kt0"); err == nil {
		t.Errorf("veth made inside Do leaked into the host namespace")
	}
}

func TestNamedNSListDelete(t *testing.T) {
	ns := newTestNS(t)
	names, err := ListNamedNS("knet-test-")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == ns.Name()
	}
	if !found {
		t.Fatalf("ListNamedNS = %v, missing %q", names, ns.Name())
	}
	out, err := ns.Run(t.Context(), nil, "cat", "/proc/self/net/dev")
	if err != nil {
		t.Skipf("cannot exec cat: %v", err)
	}
	if want := " lo:"; !strings.Contains(string(out), want) {
		t.Errorf("process started in the namespace saw %q, want only lo", out)
	}
	// /proc/net/dev: two header lines, then one line per link; a fresh namespace has only
	// lo and the fallback devices of loaded tunnel modules (tunl0 once ipip is loaded).
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[2:] {
		dev, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch dev {
		case "lo", "tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip6gre0", "ip_vti0", "ip6_vti0":
		default:
			t.Errorf("process started in the namespace sees link %q:\n%s", dev, out)
		}
	}
	if err := ns.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ns.Path()); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Delete: %v", ns.Path(), err)
	}
}

func TestAnonymousNS(t *testing.T) {
	ns, err := NewNS("")
	if err != nil {
		t.Skipf("cannot create a namespace: %v", err)
	}
	defer ns.Close()
	if ns.Name() != "" {
		t.Errorf("Name = %q, want empty", ns.Name())
	}
	if _, err := os.Stat(ns.Path()); err != nil {
		t.Errorf("anonymous namespace path: %v", err)
	}
}
