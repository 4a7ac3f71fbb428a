package compare

import (
	"bytes"
	"strings"
	"testing"

	"github.com/knet-dev/knet/cluster"
)

func TestWriteSummarySeed(t *testing.T) {
	var cs []*cluster.Cluster
	for _, n := range []string{"cluster-a", "cluster-b", "cluster-c"} {
		c, err := cluster.Preset(n)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	sums, err := Summarize(cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		if s.PodMTU == 0 || s.FirstPacket == 0 || s.Service == "" || s.SameSubnet.Dev == "" || s.CrossSubnet.Dev == "" {
			t.Errorf("%s: incomplete summary %+v", s.Cluster, s)
		}
		// Calico lowers the pod MTU by the encapsulation; kube-router v2 leaves it at the host's
		// and the summary must say so.
		if s.Network.Plugin == cluster.CNICalico && s.CrossSubnet.Encap != "" && s.PodMTU > s.CrossSubnet.TunnelMTU {
			t.Errorf("%s: pod MTU %d above the tunnel's %d", s.Cluster, s.PodMTU, s.CrossSubnet.TunnelMTU)
		}
	}
	// cluster-a is Calico IPIP CrossSubnet + IPVS: same subnet native, cross subnet tunl0.
	if a := sums[0]; a.SameSubnet.Encap != "" || a.CrossSubnet.Dev != "tunl0" || a.Measure.IPVSServices == 0 {
		t.Errorf("cluster-a: same %+v cross %+v ipvs %v", a.SameSubnet, a.CrossSubnet, a.Measure.IPVSServices)
	}
	var buf bytes.Buffer
	if err := WriteSummary(&buf, cs); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"cluster-a", "cluster-b", "cluster-c", "pod MTU", "first packet to a Service", "Recommendation:", "deprecated", "pods get MTU 1500 but the tunnel carries 1480"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	t.Log("\n" + out)
}
