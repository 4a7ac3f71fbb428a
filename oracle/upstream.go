package oracle

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"time"
	"unsafe"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sysctltest "k8s.io/component-helpers/node/util/sysctl/testing"
	"k8s.io/klog/v2"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	"k8s.io/kubernetes/pkg/proxy/conntrack"
	"k8s.io/kubernetes/pkg/proxy/healthcheck"
	upstreamiptables "k8s.io/kubernetes/pkg/proxy/iptables"
	proxyutil "k8s.io/kubernetes/pkg/proxy/util"
	"k8s.io/kubernetes/pkg/proxy/util/nfacct"
	proxyutiltest "k8s.io/kubernetes/pkg/proxy/util/testing"
	utiliptables "k8s.io/kubernetes/pkg/util/iptables"
	iptablestest "k8s.io/kubernetes/pkg/util/iptables/testing"
)

// UpstreamVersion is the kube-proxy release the oracle runs (k8s.io/kubernetes in go.mod).
const UpstreamVersion = "v1.37.2"

// Detector names the local-traffic detector kube-proxy is configured with
// (KubeProxyConfiguration.detectLocalMode).
type Detector string

// Local-traffic detectors.
const (
	DetectNone            Detector = "None"
	DetectClusterCIDR     Detector = "ClusterCIDR"
	DetectBridgeInterface Detector = "BridgeInterface"
	DetectInterfacePrefix Detector = "InterfaceNamePrefix"
)

// Config is what both proxiers are configured with. Zero values mean kube-proxy's defaults
// where kube-proxy has one.
type Config struct {
	NodeName string     `json:"nodeName,omitempty"`
	NodeIP   netip.Addr `json:"nodeIP,omitempty"`
	// Family is corev1.IPv4Protocol or corev1.IPv6Protocol.
	Family corev1.IPFamily `json:"family,omitempty"`

	Detector Detector `json:"detector,omitempty"`
	// DetectorValue is the CIDR, bridge name or interface prefix of the detector.
	DetectorValue string `json:"detectorValue,omitempty"`

	MasqueradeAll      bool  `json:"masqueradeAll,omitempty"`
	MasqueradeBit      int32 `json:"masqueradeBit,omitempty"`
	LocalhostNodePorts bool  `json:"localhostNodePorts,omitempty"`
	// NodePortAddresses are CIDRs; empty means all local addresses.
	NodePortAddresses []string `json:"nodePortAddresses,omitempty"`
	// ConntrackTCPLiberal says whether net.netfilter.nf_conntrack_tcp_be_liberal is set.
	ConntrackTCPLiberal bool `json:"conntrackTCPLiberal,omitempty"`
	// NFAcct says whether the kernel supports nfacct (kube-proxy then counts INVALID drops
	// and localhost NodePort accepts with "-m nfacct" rules).
	NFAcct bool `json:"nfacct,omitempty"`
	// NodeZone is the node's topology.kubernetes.io/zone label ("" for none).
	NodeZone string `json:"nodeZone,omitempty"`
	// HostAddrs are the addresses the node's interfaces carry (what NodePortAddresses
	// selects from); the node IP is always among them.
	HostAddrs []netip.Prefix `json:"hostAddrs,omitempty"`
}

// MasqueradeMark is the mark kube-proxy derives from MasqueradeBit, spelled as it writes it
// (fmt's "%#08x": "0x4000" for bit 14).
func (c Config) MasqueradeMark() string {
	return fmt.Sprintf("%#08x", 1<<uint(c.MasqueradeBit))
}

// Upstream is kube-proxy's own iptables Proxier (k8s.io/kubernetes/pkg/proxy/iptables)
// running in-process against the fake iptables of pkg/util/iptables/testing.
type Upstream struct {
	proxier *upstreamiptables.Proxier
	ipt     *recordingIPTables
	synced  bool
}

// recordingIPTables is upstream's fake iptables that also keeps the last restore input.
type recordingIPTables struct {
	*iptablestest.FakeIPTables
	last []byte
	n    int
}

// RestoreAll records data and hands it to the fake, which parses and applies it.
func (r *recordingIPTables) RestoreAll(data []byte, flush utiliptables.FlushFlag, counters utiliptables.RestoreCountersFlag) error {
	r.last = append([]byte(nil), data...)
	r.n++
	return r.FakeIPTables.RestoreAll(data, flush, counters)
}

// NewUpstream builds kube-proxy's iptables Proxier with cfg through its exported
// NewProxier, as kube-proxy's server does, with in-memory stand-ins for what would touch
// the host.
//
// NewProxier always wires the real conntrack, nfacct, service health-check server
// (which listens on health-check node ports) and network-interface lister. Upstream's
// own NewFakeProxier (a _test.go file, not importable) builds the struct with fakes
// instead; the fields are unexported, so NewUpstream swaps in the fakes upstream
// exports for this purpose (conntrack.NewFake, healthcheck.NewFakeServiceHealthServer,
// proxyutiltest.NewFakeNetwork) through reflection, and clears nfacct (as when the kernel
// lacks it, or replaces it by an in-memory one when Config.NFAcct is set) so that the
// output does not depend on the host.
func NewUpstream(cfg Config) (*Upstream, error) {
	ipt := &recordingIPTables{}
	if cfg.Family == corev1.IPv6Protocol {
		ipt.FakeIPTables = iptablestest.NewIPv6Fake()
	} else {
		ipt.FakeIPTables = iptablestest.NewFake()
	}
	sysctl := sysctltest.NewFake()
	if cfg.ConntrackTCPLiberal {
		sysctl.Settings["net/netfilter/nf_conntrack_tcp_be_liberal"] = 1
	}
	var det proxyutil.LocalTrafficDetector
	switch cfg.Detector {
	case DetectNone, "":
		det = proxyutil.NewNoOpLocalDetector()
	case DetectClusterCIDR:
		det = proxyutil.NewDetectLocalByCIDR(cfg.DetectorValue)
	case DetectBridgeInterface:
		det = proxyutil.NewDetectLocalByBridgeInterface(cfg.DetectorValue)
	case DetectInterfacePrefix:
		det = proxyutil.NewDetectLocalByInterfaceNamePrefix(cfg.DetectorValue)
	default:
		return nil, fmt.Errorf("unknown local detector %q", cfg.Detector)
	}
	bit := cfg.MasqueradeBit
	lnp := cfg.LocalhostNodePorts
	kcfg := &kubeproxyconfig.KubeProxyConfiguration{
		IPTables: kubeproxyconfig.KubeProxyIPTablesConfiguration{
			MasqueradeBit:      &bit,
			LocalhostNodePorts: &lnp,
		},
		Linux:             kubeproxyconfig.KubeProxyLinuxConfiguration{MasqueradeAll: cfg.MasqueradeAll},
		NodePortAddresses: cfg.NodePortAddresses,
		SyncPeriod:        metav1.Duration{Duration: 30 * time.Second},
		MinSyncPeriod:     metav1.Duration{Duration: time.Second},
	}
	ctx := klog.NewContext(context.Background(), logr.Discard())
	p, err := upstreamiptables.NewProxier(ctx, kcfg, cfg.Family, ipt, sysctl, det,
		cfg.NodeName, net.IP(cfg.NodeIP.AsSlice()), nil, nil, false)
	if err != nil {
		return nil, fmt.Errorf("upstream NewProxier: %w", err)
	}

	nw := proxyutiltest.NewFakeNetwork()
	addrs := make([]net.Addr, 0, len(cfg.HostAddrs))
	for _, a := range cfg.HostAddrs {
		addrs = append(addrs, &net.IPNet{IP: net.IP(a.Addr().AsSlice()), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())})
	}
	nw.AddInterfaceAddr(&net.Interface{Name: "eth0", Index: 1, Flags: net.FlagUp}, addrs)

	for name, v := range map[string]any{
		"conntrack":           conntrack.NewFake(),
		"serviceHealthServer": healthcheck.NewFakeServiceHealthServer(),
		"networkInterfacer":   nw,
		"nfacct":              nfacctOf(cfg.NFAcct),
		// knet has no clock and scans for stale chains on every sync; upstream skips the
		// scan in large-cluster mode when the last one is less than syncPeriod old.
		"syncPeriod": time.Duration(1),
	} {
		if err := setUnexported(p, name, v); err != nil {
			return nil, err
		}
	}
	if cfg.NodeZone != "" {
		// As the node informer does: it queues a (full) sync, which Sync runs.
		p.OnTopologyChange(map[string]string{corev1.LabelTopologyZone: cfg.NodeZone})
	}
	return &Upstream{proxier: p, ipt: ipt}, nil
}

// memNFAcct is an in-memory nfacct (the counters kube-proxy ensures at a full sync).
type memNFAcct struct{ counters map[string]*nfacct.Counter }

// Ensure creates the counter name if it does not exist.
func (m *memNFAcct) Ensure(name string) error {
	if m.counters[name] == nil {
		m.counters[name] = &nfacct.Counter{Name: name}
	}
	return nil
}

// Add creates the counter name.
func (m *memNFAcct) Add(name string) error {
	if m.counters[name] != nil {
		return nfacct.ErrObjectAlreadyExists
	}
	m.counters[name] = &nfacct.Counter{Name: name}
	return nil
}

// Get returns the counter name.
func (m *memNFAcct) Get(name string) (*nfacct.Counter, error) {
	if c := m.counters[name]; c != nil {
		return c, nil
	}
	return nil, nfacct.ErrObjectNotFound
}

// List returns the counters by name.
func (m *memNFAcct) List() ([]*nfacct.Counter, error) {
	var out []*nfacct.Counter
	for _, k := range sortedKeys(m.counters) {
		out = append(out, m.counters[k])
	}
	return out, nil
}

// nfacctOf is the nfacct the proxier gets: in memory when supported, none otherwise.
func nfacctOf(supported bool) any {
	if !supported {
		return nil
	}
	var i nfacct.Interface = &memNFAcct{counters: map[string]*nfacct.Counter{}}
	return i
}

// setUnexported sets p's unexported field name to v (nil for the zero value).
func setUnexported(p *upstreamiptables.Proxier, name string, v any) error {
	f := reflect.ValueOf(p).Elem().FieldByName(name)
	if !f.IsValid() {
		return fmt.Errorf("upstream Proxier has no field %q", name)
	}
	f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	if v == nil {
		f.Set(reflect.Zero(f.Type()))
		return nil
	}
	rv := reflect.ValueOf(v)
	if !rv.Type().AssignableTo(f.Type()) {
		return fmt.Errorf("upstream Proxier field %q is %s, not assignable from %s", name, f.Type(), rv.Type())
	}
	f.Set(rv)
	return nil
}

// Apply feeds the differences between from and to to the proxier's event handlers, as
// the informers would: deleted objects, then updated, then added (Services before
// EndpointSlices). Objects are matched by namespace/name.
func (u *Upstream) Apply(from, to State) {
	p := u.proxier
	oldSvc, newSvc := indexServices(from.Services), indexServices(to.Services)
	for _, k := range sortedKeys(oldSvc) {
		if _, ok := newSvc[k]; !ok {
			p.OnServiceDelete(oldSvc[k])
		}
	}
	for _, k := range sortedKeys(newSvc) {
		if o, ok := oldSvc[k]; ok {
			if !reflect.DeepEqual(o, newSvc[k]) {
				p.OnServiceUpdate(o, newSvc[k])
			}
		} else {
			p.OnServiceAdd(newSvc[k])
		}
	}
	oldEPS, newEPS := indexSlices(from.EndpointSlices), indexSlices(to.EndpointSlices)
	for _, k := range sortedKeys(oldEPS) {
		if _, ok := newEPS[k]; !ok {
			p.OnEndpointSliceDelete(oldEPS[k])
		}
	}
	for _, k := range sortedKeys(newEPS) {
		if o, ok := oldEPS[k]; ok {
			if !reflect.DeepEqual(o, newEPS[k]) {
				p.OnEndpointSliceUpdate(o, newEPS[k])
			}
		} else {
			p.OnEndpointSliceAdd(newEPS[k])
		}
	}
}

// Sync runs one synchronous syncProxyRules and returns the iptables-restore input it
// wrote. The first call marks Services and EndpointSlices as synced (kube-proxy's
// first, full sync). Later calls go through OnServiceSynced too: it only sets a flag
// that is already set and then calls syncProxyRules directly, which is the only
// exported synchronous route into it (Sync and the handlers only queue a run for
// SyncLoop, which the oracle never starts, so nothing syncs behind its back).
func (u *Upstream) Sync() ([]byte, error) {
	before := u.ipt.n
	if !u.synced {
		// Not initialized until both are synced: this one does not sync.
		u.proxier.OnEndpointSlicesSynced()
		u.synced = true
	}
	u.proxier.OnServiceSynced()
	if u.ipt.n != before+1 {
		return nil, fmt.Errorf("upstream proxier synced %d times, want 1", u.ipt.n-before)
	}
	return u.ipt.last, nil
}
