package vm

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// skipWithoutVM skips when the tools to build and boot the guest are missing, saying which.
func skipWithoutVM(t *testing.T) {
	t.Helper()
	for _, b := range []string{"qemu-system-x86_64", "busybox", "cpio", "depmod", "dpkg-deb"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("the VM needs %s (scripts/install-test-deps.sh installs it): %v", b, err)
		}
	}
	if testing.Short() {
		t.Skip("boots a kernel under qemu; skipped with -short")
	}
}

// TestGuestHasWhatTheHostLacks boots the Debian kernel and proves, with the real tools,
// that IPVS (with schedulers), ipip (tunl0) and dummy links work there.
func TestGuestHasWhatTheHostLacks(t *testing.T) {
	skipWithoutVM(t)
	script := `set -e
uname -r
ipvsadm -A -t 10.1.0.10:53 -s rr
ipvsadm -a -t 10.1.0.10:53 -r 10.0.7.2:53 -m
ipvsadm -A -t 10.1.0.1:443 -s mh
ipvsadm -ln
ip link add kube-ipvs0 type dummy
ip -d link show kube-ipvs0
ip -d link show tunl0
ip netns add knet-probe
ip netns exec knet-probe iptables -t nat -A POSTROUTING -j MASQUERADE
ip netns exec knet-probe iptables-save -t nat
echo done`
	var out strings.Builder
	start := time.Now()
	res, err := Run(t.Context(), Options{Log: testLog{t}}, script, &out)
	if err != nil {
		t.Fatalf("Run: %v\noutput:\n%s", err, out.String())
	}
	t.Logf("boot %v, total %v (wall %v)", res.Boot, res.Total, time.Since(start))
	got := out.String()
	if res.ExitCode != 0 {
		t.Fatalf("guest script exited %d:\n%s", res.ExitCode, got)
	}
	for _, want := range []string{
		"TCP  10.1.0.10:53 rr",
		"  -> 10.0.7.2:53                  Masq    1      0          0         \n",
		"TCP  10.1.0.1:443 mh",
		"kube-ipvs0: <BROADCAST,NOARP> mtu 1500",
		"dummy",
		"tunl0@NONE: <NOARP> mtu 1480",
		"-A POSTROUTING -j MASQUERADE",
		"done",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("guest output lacks %q:\n%s", want, got)
		}
	}
}

func TestExitCodePropagates(t *testing.T) {
	skipWithoutVM(t)
	var out strings.Builder
	res, err := Run(t.Context(), Options{Console: testLog{t}}, "echo hello; exit 3", &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || out.String() != "hello\n" {
		t.Errorf("got exit %d output %q, want 3 and %q", res.ExitCode, out.String(), "hello\n")
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
