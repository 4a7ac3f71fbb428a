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

// TestKernelParityInVM runs the kernel package's parity tests inside the guest, where
// dummy and ipip exist, so the tests the host skips run for real (KNET_IN_VM=1 turns a
// missing feature into a failure there).
func TestKernelParityInVM(t *testing.T) {
	skipWithoutVM(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("building the test binary needs the go tool: %v", err)
	}
	wd, _ := os.Getwd()
	mod, err := ModuleDir(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir() + "/kernel.test"
	if err := BuildStatic(t.Context(), mod, "./kernel", bin, true); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res, err := Run(t.Context(), Options{Files: map[string]string{"/knet/kernel.test": bin}, Env: []string{"KNET_IN_VM=1"}},
		"cd /knet && ./kernel.test -test.v -test.count=1 -test.run 'Parity|NS'", &out)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	t.Logf("guest boot %v, total %v", res.Boot, res.Total)
	got := out.String()
	if res.ExitCode != 0 {
		t.Fatalf("kernel tests failed in the guest (exit %d):\n%s", res.ExitCode, got)
	}
	for _, name := range []string{"TestParityRoutingFeatures", "TestParityDummy", "TestParityCalicoNode"} {
		if !strings.Contains(got, "--- PASS: "+name) {
			t.Errorf("%s did not pass in the guest:\n%s", name, got)
		}
	}
	t.Log(got)
}
