package explain

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
	fipset "github.com/knet-dev/knet/format/ipset"
	"github.com/knet-dev/knet/format/ipvsadm"
	kpipvs "github.com/knet-dev/knet/render/kubeproxy/ipvs"
)

func ipvsObjects() *cluster.Objects {
	s := func(v string) *string { return &v }
	tcp := corev1.ProtocolTCP
	port := int32(8080)
	yes := true
	pod := func(name, ip, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{PodIP: ip}}
	}
	return &cluster.Objects{
		Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "front"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.100.7", ClusterIPs: []string{"10.96.100.7"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: tcp, NodePort: 30080}}}}},
		EndpointSlices: []*discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "front-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "front"}}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: s("http"), Port: &port, Protocol: &tcp}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.1.20"}, NodeName: s("node-1"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
				{Addresses: []string{"10.244.2.20"}, NodeName: s("node-2"), Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			}}},
		Pods: []*corev1.Pod{pod("front-a", "10.244.1.20", "node-1"), pod("front-b", "10.244.2.20", "node-2")},
		Nodes: []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.11"}}}}},
	}
}

func TestExplainIPVSAdmAndIPSet(t *testing.T) {
	objs := ipvsObjects()
	res, err := kpipvs.Render(*objs, kpipvs.DefaultOptions("node-1", netip.MustParseAddr("192.168.1.11")))
	if err != nil {
		t.Fatal(err)
	}
	var list bytes.Buffer
	if err := ipvsadm.WriteList(&list, res.IPVS, ipvsadm.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	recs, err := IPVSAdm("ipvsadm.txt", list.Bytes(), objs)
	if err != nil {
		t.Fatal(err)
	}
	type brief struct {
		Kind                     Kind
		Service, Port, Pod, Node string
	}
	var got []brief
	for _, r := range recs {
		got = append(got, brief{r.Kind, r.Refs.Service, r.Refs.Port, r.Refs.Pod, r.Refs.Node})
	}
	// ipvsadm prints the node-IP virtual server first: 192.168.1.11 - 10.96.100.7 is
	// negative as an int (libipvs's signed-difference sort).
	want := []brief{
		{Kind: KindIPVSHeader}, {Kind: KindIPVSTitle}, {Kind: KindIPVSTitle},
		{KindIPVSService, "shop/front", "http", "", "node-1"},
		{KindIPVSDest, "shop/front", "http", "shop/front-a", ""},
		{KindIPVSDest, "shop/front", "http", "shop/front-b", ""},
		{KindIPVSService, "shop/front", "http", "", ""},
		{KindIPVSDest, "shop/front", "http", "shop/front-a", ""},
		{KindIPVSDest, "shop/front", "http", "shop/front-b", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ipvsadm records (-want +got):\n%s", diff)
	}
	if !strings.Contains(recs[3].Meaning, "NodePort 30080/TCP") || !strings.Contains(recs[6].Meaning, "ClusterIP 10.96.100.7:80") {
		t.Errorf("meanings: %q / %q", recs[3].Meaning, recs[6].Meaning)
	}

	var save bytes.Buffer
	if err := fipset.WriteSave(&save, res.IPSets, fipset.Options{Sorted: true}); err != nil {
		t.Fatal(err)
	}
	srecs, err := IPSet("ipset.txt", save.Bytes(), objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range srecs {
		if r.Kind == Unknown {
			t.Errorf("line %d %q not placed: %s", r.Line, r.Text, r.Meaning)
		}
		if r.Kind == KindIPSetMember && r.Refs.Service == "" && r.Refs.Pod == "" {
			t.Errorf("member line %d %q has no Service or pod", r.Line, r.Text)
		}
	}
	byText := map[string]Record{}
	for _, r := range srecs {
		byText[r.Text] = r
	}
	if r := byText["add KUBE-LOOP-BACK 10.244.1.20,tcp:8080,10.244.1.20"]; r.Refs.Pod != "shop/front-a" {
		t.Errorf("KUBE-LOOP-BACK member refs = %+v", r.Refs)
	}
	if r := byText["add KUBE-NODE-PORT-TCP 30080"]; r.Refs.Service != "shop/front" {
		t.Errorf("KUBE-NODE-PORT-TCP member refs = %+v", r.Refs)
	}
}

func TestExplainIPVSAdmUnknown(t *testing.T) {
	in := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.99.99.99:80 wlc\n" +
		"  -> 10.1.1.1:80                  Route   1      0          0\n" +
		"garbage here\n"
	recs, err := IPVSAdm("x.txt", []byte(in), ipvsObjects())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []Kind
	for _, r := range recs {
		kinds = append(kinds, r.Kind)
	}
	if diff := cmp.Diff([]Kind{KindIPVSHeader, KindIPVSTitle, KindIPVSTitle, Unknown, Unknown, Unknown}, kinds); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
	if recs[5].Line != 6 || !strings.Contains(recs[5].Meaning, "not understood") {
		t.Errorf("garbage line record = %+v", recs[5])
	}
}

func TestExplainConnections(t *testing.T) {
	in := "IPVS connection entries\n" +
		"pro expire state       source             virtual            destination\n" +
		"TCP 14:58  ESTABLISHED 192.168.1.11:40000 10.96.100.7:80     10.244.1.20:8080\n" +
		"TCP 179:59 NONE        10.244.2.20:0      10.96.100.7:80     10.244.1.20:8080\n"
	recs, err := IPVSAdm("conns.txt", []byte(in), ipvsObjects())
	if err != nil {
		t.Fatal(err)
	}
	if recs[2].Kind != KindIPVSConn || recs[2].Refs.Service != "shop/front" || recs[2].Refs.Pod != "shop/front-a" ||
		!strings.Contains(recs[2].Meaning, "from node node-1") {
		t.Errorf("connection record = %+v", recs[2])
	}
	if recs[3].Kind != KindIPVSTemplate || !strings.Contains(recs[3].Meaning, "pod shop/front-b") {
		t.Errorf("template record = %+v", recs[3])
	}
}
