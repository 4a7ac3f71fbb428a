//go:build linux

package lab

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/knet-dev/knet/lab/vm"
)

// TestDifferentialInVM runs this package's lab tests inside the Debian kernel under qemu,
// where ipip, dummy and IPVS exist, so every preset runs for real in CI: it builds the test
// binary static (go test -c, CGO_ENABLED=0), boots the guest with it and requires every
// differential subtest to pass there (KNET_IN_VM=1 makes a missing feature a failure).
func TestDifferentialInVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel under qemu; skipped with -short")
	}
	if os.Getenv("KNET_IN_VM") == "1" {
		t.Skip("already inside the VM")
	}
	for _, b := range []string{"qemu-system-x86_64", "busybox", "cpio", "depmod", "dpkg-deb", "go"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("the VM needs %s (scripts/install-test-deps.sh installs it): %v", b, err)
		}
	}
	wd, _ := os.Getwd()
	mod, err := vm.ModuleDir(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir() + "/lab.test"
	if err := vm.BuildStatic(t.Context(), mod, "./lab", bin, true); err != nil {
		t.Fatal(err)
	}
	env := []string{"KNET_IN_VM=1"}
	if s := os.Getenv("KNET_LAB_SEED"); s != "" {
		env = append(env, "KNET_LAB_SEED="+s)
	}
	var out strings.Builder
	res, err := vm.Run(t.Context(), vm.Options{Files: map[string]string{"/knet/lab.test": bin}, Env: env, Timeout: 35 * time.Minute},
		"cd /knet && ./lab.test -test.v -test.count=1 -test.timeout 30m -test.run '^(TestDifferential|TestUpDownLeavesNothing|TestUpRunDownNative|TestNFTablesModeNative|TestIPVSSchedulers|TestIPVSAdmMatchesRealTool)$'", &out)
	t.Logf("guest output:\n%s", out.String())
	if err != nil {
		t.Fatalf("vm: %v", err)
	}
	t.Logf("guest boot %v, total %v", res.Boot, res.Total)
	if res.ExitCode != 0 {
		t.Errorf("lab tests failed inside the VM (exit %d); see the guest output above", res.ExitCode)
	}
	for _, want := range []string{"--- PASS: TestDifferential/cluster-b", "--- PASS: TestUpDownLeavesNothing", "--- PASS: TestIPVSAdmMatchesRealTool"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("guest output lacks %q", want)
		}
	}
}
