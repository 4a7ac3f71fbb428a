package cli

import (
	"strings"
	"testing"
)

// TestExec checks `knet exec` on cluster-b (the seed's cluster B) against golden files.
func TestExec(t *testing.T) {
	now := "--now=2026-11-26T09:30:00Z"
	worker := "ip-172-31-27-63"
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"ip route on a worker", []string{"exec", "--preset", "cluster-b", worker, now, "--", "ip", "route"}, "exec/cluster-b-worker-ip-route.golden"},
		{"ip addr on a worker", []string{"exec", "--preset", "cluster-b", worker, now, "--", "ip", "addr"}, "exec/cluster-b-worker-ip-addr.golden"},
		{"iptables-save -t nat", []string{"exec", "--preset", "cluster-b", worker, now, "--", "iptables-save", "-t", "nat"}, "exec/cluster-b-worker-iptables-save-nat.golden"},
		{"crictl ps", []string{"exec", "--preset", "cluster-b", worker, now, "--", "crictl", "ps"}, "exec/cluster-b-worker-crictl-ps.golden"},
		{"crictl pods", []string{"exec", "--preset", "cluster-b", worker, now, "--", "crictl", "pods"}, "exec/cluster-b-worker-crictl-pods.golden"},
		{"iptables -L KUBE-SERVICES", []string{"exec", "--preset", "cluster-b", worker, now, "--", "iptables", "-t", "nat", "-L", "KUBE-SERVICES", "-n", "--line-numbers"}, "exec/cluster-b-worker-iptables-L-kube-services.golden"},
		{"pod ip route", []string{"exec", "--preset", "cluster-b", worker + "/busybox", now, "--", "ip", "route"}, "exec/cluster-b-busybox-ip-route.golden"},
		{"cluster-a ipvsadm", []string{"exec", "--preset", "cluster-a", "ip-172-31-5-31", now, "--", "ipvsadm", "-Ln"}, "exec/cluster-a-worker-ipvsadm-Ln.golden"},
		{"cluster-c ip route", []string{"exec", "--preset", "cluster-c", worker, now, "--", "ip", "route"}, "exec/cluster-c-worker-ip-route.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			checkGolden(t, tt.golden, out)
		})
	}
}

func TestExecErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"exec", "--preset", "cluster-b", "ip-172-31-27-63", "ip", "route"}, "usage: knet exec"},
		{[]string{"exec", "--preset", "cluster-b", "nope", "--", "ip", "route"}, `has no node "nope"`},
		{[]string{"exec", "--preset", "cluster-b", "ip-172-31-27-63/nope", "--", "ip", "route"}, `has no pod "nope"`},
		{[]string{"exec", "--preset", "cluster-b", "ip-172-31-27-63", "--", "tcpdump"}, "tcpdump: command not found in the emulator; the emulator supports:"},
		{[]string{"exec", "--preset", "cluster-b", "ip-172-31-27-63", "--", "ipvsadm", "-Ln"}, "no IPVS state on this node"},
		{[]string{"exec", "--preset", "cluster-b", "ip-172-31-27-63", "--", "conntrack", "-L"}, "conntrack output is not available yet"},
		{[]string{"exec", "--preset", "cluster-b", "ip-172-31-27-63", "--", "ip", "route", "show", "dev", "eth9"}, `Device "eth9" does not exist.`},
		{[]string{"exec", "--preset", "cluster-b", "ip-172-31-27-63/busybox", "--", "crictl", "ps"}, "no container runtime state"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, errOut, code := runCLI(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d stderr %q, want failure containing %q", code, errOut, tt.want)
			}
		})
	}
}
