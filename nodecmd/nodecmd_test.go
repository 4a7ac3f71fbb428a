package nodecmd

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/render"
)

func renderNode(t testing.TB, preset, node string) *dataplane.Node {
	t.Helper()
	c, err := cluster.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	n, err := render.Node(c, node)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func run(t *testing.T, n *dataplane.Node, argv ...string) (string, error) {
	t.Helper()
	var b bytes.Buffer
	err := RunEnv(context.Background(), n, argv, &b, Env{Now: time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)})
	return b.String(), err
}

// TestDispatch checks that each command form reaches its printer (the printers' own output is
// tested in their packages; here a distinctive line per command).
func TestDispatch(t *testing.T) {
	b := renderNode(t, "cluster-b", "ip-172-31-27-63")
	a := renderNode(t, "cluster-a", "ip-172-31-5-31")
	tests := []struct {
		node *dataplane.Node
		argv []string
		want string
	}{
		{b, []string{"ip", "route"}, "blackhole 10.0.104.0/24 proto bird \n"},
		{b, []string{"ip", "r", "show", "table", "local"}, "local 172.31.27.63 dev eth0 proto kernel scope host src 172.31.27.63 \n"},
		{b, []string{"ip", "-4", "addr", "show", "dev", "tunl0"}, "    inet 10.0.104.0/32 scope global tunl0\n"},
		{b, []string{"ip", "-d", "link", "show", "dev", "tunl0"}, "ipip any remote any local any ttl inherit nopmtudisc"},
		{b, []string{"ip", "neigh"}, " PERMANENT"},
		{b, []string{"ip", "rule"}, "32766:\tfrom all lookup main"},
		{b, []string{"crictl", "ps", "-q"}, cluster.ContainerID("default", "busybox", "busybox") + "\n"},
		{b, []string{"crictl", "pods"}, "POD ID              CREATED             STATE               NAME"},
		{b, []string{"iptables-save", "-t", "nat"}, "-A KUBE-SERVICES -d 10.1.60.159/32 -p tcp -m comment --comment \"ingress-nginx/ingress-nginx-controller:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-"},
		{b, []string{"iptables", "-t", "nat", "-nL", "KUBE-MARK-MASQ"}, "MARK       0    --  0.0.0.0/0            0.0.0.0/0            MARK or 0x4000\n"},
		{a, []string{"ipvsadm", "-Ln"}, "TCP  10.1.60.159:80 rr\n"},
		{a, []string{"ipvsadm", "-L", "-n", "--stats"}, "Conns"},
		{a, []string{"ipset", "list"}, "Name: KUBE-CLUSTER-IP\n"},
		{a, []string{"ipset", "save"}, "create KUBE-CLUSTER-IP hash:ip,port"},
		{a, []string{"ip", "addr", "show", "dev", "kube-ipvs0"}, "inet 10.1.60.159/32 brd 10.1.60.159 scope global kube-ipvs0"},
		{b, []string{"nft", "list", "ruleset"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			out, err := run(t, tt.node, tt.argv...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	b := renderNode(t, "cluster-b", "ip-172-31-27-63")
	pod, err := Namespace(b, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		node  *dataplane.Node
		argv  []string
		want  string
		usage bool
	}{
		{b, []string{"tcpdump", "-i", "eth0"}, "tcpdump: command not found in the emulator", true},
		{b, nil, "no command", true},
		{b, []string{"ip", "-s", "link"}, `ip: option "-s" is not emulated`, true},
		{b, []string{"ip", "xfrm"}, `ip: object "xfrm" is not emulated`, true},
		{b, []string{"ip", "route", "get", "1.1.1.1"}, `argument "get" is not emulated`, true},
		{b, []string{"ip", "addr", "show", "dev", "nope0"}, `Device "nope0" does not exist.`, false},
		{b, []string{"iptables", "-t", "nat", "-L"}, "give -n", true},
		{b, []string{"iptables", "-A", "INPUT", "-j", "DROP"}, `option "-A" is not emulated`, true},
		{b, []string{"iptables", "-t", "nat", "-nL", "NOPE"}, "chain `NOPE' in table `nat' is incompatible", false},
		{b, []string{"ipvsadm", "-Ln"}, "no IPVS state on this node", false},
		{b, []string{"ipset", "list"}, "no ipsets on this node", false},
		{b, []string{"conntrack", "-L"}, "conntrack output is not available yet", false},
		{pod, []string{"crictl", "ps"}, "no container runtime state", false},
		{pod, []string{"iptables-save"}, "no iptables state", false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			_, err := run(t, tt.node, tt.argv...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			var ue *UsageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error = %v, want %v", !tt.usage, tt.usage)
			}
			if tt.usage && !strings.Contains(err.Error(), "the emulator supports:") {
				t.Errorf("usage error does not list what is supported: %v", err)
			}
		})
	}
	if _, err := Namespace(b, "ghost"); err == nil || !strings.Contains(err.Error(), "default/busybox") {
		t.Errorf("unknown pod error %v does not list the node's pods", err)
	}
	if p, err := Namespace(b, "default/busybox"); err != nil || p != pod {
		t.Errorf("NAMESPACE/POD lookup: %v", err)
	}
}

// FuzzRunArgs checks that no argv makes the dispatcher panic.
func FuzzRunArgs(f *testing.F) {
	for _, s := range []string{"ip route", "ip -4 -d addr show dev eth0", "iptables -t nat -nvL KUBE-SERVICES --line-numbers",
		"iptables-save -t filter -c", "crictl ps -q", "ipvsadm -Ln --stats", "ipset save", "bridge fdb show dev x", "nft list ruleset"} {
		f.Add(s)
	}
	n := renderNode(f, "cluster-b", "ip-172-31-27-63")
	f.Fuzz(func(t *testing.T, line string) {
		var b bytes.Buffer
		_ = RunEnv(context.Background(), n, strings.Fields(line), &b, Env{})
	})
}
