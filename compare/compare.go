package compare

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/knet-dev/knet/cluster"
)

// NanosecondsPerRule is the cost of examining one netfilter rule used to turn rules
// traversed into CPU: about 13 ns (Tigera 2019, derived in reference anchors §0; the
// SystemTap measurement gives 60-75 ns at 3 GHz for tcp-match rules, the nftables blog
// 10-25 ns for KUBE-SERVICES rules).
const NanosecondsPerRule = 13

// Sample is one size the combinations were rendered at.
type Sample struct {
	Nodes    int `json:"nodes"`
	Services int `json:"services"`
}

// Row is one (kube-proxy mode, pod network) combination.
type Row struct {
	Mode    cluster.ProxyMode `json:"mode"`
	Network Network           `json:"network"`
	// Measure holds the per-node metrics at the profile's size (fitted when Extrapolated).
	Measure Measure `json:"measure"`
	// Samples are the measured renders Measure comes from, in Report.Samples order; a
	// node-count sample (more nodes, same Services) has counts only: no first-packet rules
	// or sync sizes.
	Samples []Measure `json:"samples"`

	SameSubnet  Path `json:"sameSubnet"`
	CrossSubnet Path `json:"crossSubnet"`
	// EncapShare is the share of pod-to-pod packets encapsulated for the profile's
	// cross-subnet share; OverheadBytes the mean outer-header bytes per pod-to-pod packet.
	EncapShare    float64 `json:"encapShare"`
	OverheadBytes float64 `json:"overheadBytes"`
	PodMTU        int     `json:"podMTU"`
	// Unroutable says cross-subnet pod traffic has no route of its own (host-gw across
	// subnets, Calico Never without a routed underlay).
	Unroutable bool `json:"unroutable,omitempty"`

	// FirstPacketCPU is the share of one core spent examining rules for the profile's new
	// connections (rules × NanosecondsPerRule × new connections per second).
	FirstPacketCPU float64 `json:"firstPacketCPU"`
	// ChurnBytesPerSecond is what kube-proxy rewrites per second for the profile's churn.
	ChurnBytesPerSecond float64 `json:"churnBytesPerSecond"`

	Features Features `json:"features"`
	Notes    []string `json:"notes,omitempty"`

	Score   float64  `json:"score"`
	Rank    int      `json:"rank"`
	Reasons []string `json:"reasons"`
}

// Name is "nftables + calico/IPIPCrossSubnet".
func (r *Row) Name() string { return string(r.Mode) + " + " + r.Network.String() }

// Report is the comparison for a profile.
type Report struct {
	Profile Profile  `json:"profile"`
	Samples []Sample `json:"samples"`
	// Extrapolated says the profile was too big to render and the per-node metrics are
	// straight lines through the samples (in Services and in nodes); Method says how.
	Extrapolated bool   `json:"extrapolated"`
	Method       string `json:"method"`
	Rows         []Row  `json:"rows"`
	// Curves are per-mode metric curves against the number of Services (for charts).
	Curves         []Curve        `json:"curves"`
	Differences    []Difference   `json:"differences"`
	Recommendation Recommendation `json:"recommendation"`
	// Spread is how iptables and IPVS (rr) spread new connections over one Service's
	// endpoints (package simulate).
	Spread []Spread `json:"spread"`
}

// Curve is one mode's fitted metrics at a range of Service counts.
type Curve struct {
	Mode   cluster.ProxyMode `json:"mode"`
	Points []CurvePoint      `json:"points"`
}

// CurvePoint is a curve's value at a Service count.
type CurvePoint struct {
	Services         int     `json:"services"`
	Objects          float64 `json:"objects"`
	FirstPacketWorst float64 `json:"firstPacketWorst"`
}

// Recommendation is the ranked choice with its reasons.
type Recommendation struct {
	Best    string   `json:"best"`
	Ranked  []string `json:"ranked"`
	Reasons []string `json:"reasons"`
}

// largeClusterEndpoints is kube-proxy's iptables large-cluster threshold (above it the
// rules lose their comments); maxLargeSample caps the samples taken to stay above it.
const (
	largeClusterEndpoints = 1000
	maxLargeSample        = 400
)

// belowThreshold says the samples have fewer endpoints than kube-proxy's large-cluster
// threshold while the profile has more.
func belowThreshold(p *Profile, svcs []int) bool {
	return p.Services*p.EndpointsPerService > largeClusterEndpoints && svcs[0]*p.EndpointsPerService <= largeClusterEndpoints
}

// plan picks the sizes to render: the profile itself when small enough, otherwise two
// Service counts (and two node counts) on the same side of kube-proxy's large-cluster
// threshold (1,000 endpoints) as the profile.
func plan(p *Profile) (svcs, nodes []int) {
	const maxSvc, maxNodes = 300, 12
	if p.Services <= maxSvc {
		// The profile itself, and half of it for the curves against Services.
		svcs = []int{p.Services}
		if p.Services >= 4 {
			svcs = append(svcs, p.Services/2)
		}
	} else {
		s1 := 100
		if p.Services*p.EndpointsPerService > largeClusterEndpoints {
			s1 = min(max(s1, largeClusterEndpoints/p.EndpointsPerService+1), maxLargeSample)
		}
		svcs = []int{s1, 2 * s1}
	}
	repr := min(p.Nodes, maxNodes)
	if p.Subnets >= 2 {
		repr = max(repr, 2*2) // a same-subnet and a cross-subnet peer
	} else {
		repr = max(repr, 2)
	}
	if p.Nodes <= maxNodes {
		nodes = []int{repr}
	} else {
		nodes = []int{4, 8}
	}
	return svcs, nodes
}

// Compare renders every (kube-proxy mode × pod network) combination for the profile and
// ranks them. Nodes of one shape are rendered once: one representative worker per
// combination and size; per-node metrics for bigger profiles are fitted lines through the
// samples (see Report.Method).
func Compare(p *Profile) (*Report, error) {
	if p == nil {
		return nil, errors.New("compare: no profile")
	}
	prof := *p
	if err := prof.Validate(); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	svcs, nodes := plan(&prof)
	type job struct {
		row, nodes, svcs int
	}
	var rows []Row
	for _, mode := range ProxyModes() {
		for _, net := range Networks() {
			rows = append(rows, Row{Mode: mode, Network: net})
		}
	}
	// samples[row] holds measures at (svcs[0],nodes[0]), (svcs[1],nodes[0]), (svcs[0],nodes[1]).
	var sizes []Sample
	sizes = append(sizes, Sample{Nodes: nodes[0], Services: svcs[0]})
	if len(svcs) > 1 {
		sizes = append(sizes, Sample{Nodes: nodes[0], Services: svcs[1]})
	}
	if len(nodes) > 1 {
		sizes = append(sizes, Sample{Nodes: nodes[1], Services: svcs[0]})
	}
	meas := make([][]Measure, len(rows))
	shapes := make([]shape, len(rows))
	for i := range meas {
		meas[i] = make([]Measure, len(sizes))
	}
	var jobs []job
	for r := range rows {
		for s := range sizes {
			jobs = append(jobs, job{row: r, nodes: s, svcs: s})
		}
	}
	errs := make([]error, len(jobs))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				jb := jobs[j]
				row := rows[jb.row]
				sz := sizes[jb.svcs]
				c, err := synthCluster(&prof, row.Network, row.Mode, sz.Nodes, sz.Services)
				if err != nil {
					errs[j] = err
					continue
				}
				// A node-count sample only contributes its route count (see fit).
				m, sh, err := measure(c, sz.Services, sz.Nodes == sizes[0].Nodes)
				if err != nil {
					errs[j] = fmt.Errorf("compare: %s at %d nodes, %d Services: %w", row.Name(), sz.Nodes, sz.Services, err)
					continue
				}
				meas[jb.row][jb.svcs] = m
				if jb.svcs == 0 {
					shapes[jb.row] = sh
				}
			}
		}()
	}
	for j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rep := &Report{Profile: prof, Samples: sizes, Extrapolated: sizes[0].Services != prof.Services || sizes[0].Nodes != prof.Nodes}
	if rep.Extrapolated {
		rep.Method = fmt.Sprintf("rendered one representative worker per combination at %s; per-node metrics are straight lines through them "+
			"in the number of Services (and, for routes, of nodes), evaluated at %d Services and %d nodes (endpoints are spread over the "+
			"profile's nodes at every sample; first-packet rules are fitted the same way, which is exact for iptables' linear "+
			"KUBE-SERVICES and flat for IPVS and nftables)",
			sampleList(sizes), prof.Services, prof.Nodes)
		if belowThreshold(&prof, svcs) {
			rep.Method += fmt.Sprintf("; the samples have at most %d endpoints, below kube-proxy's large-cluster threshold (%d) that the profile exceeds, "+
				"so iptables sync sizes include the rule comments kube-proxy drops at the profile's size (an overestimate)",
				svcs[0]*prof.EndpointsPerService, largeClusterEndpoints)
		}
	} else {
		rep.Method = fmt.Sprintf("rendered one representative worker per combination at %s (the first is the profile's size: its metrics are measured, not extrapolated; the others only draw the curves)", sampleList(sizes))
	}
	for i := range rows {
		r := &rows[i]
		r.Samples = meas[i]
		r.Measure = fit(meas[i], sizes, prof.Services, prof.Nodes)
		sh := shapes[i]
		r.SameSubnet, r.CrossSubnet, r.PodMTU, r.Notes = sh.Same, sh.Cross, sh.PodMTU, sh.Notes
		cross := prof.Traffic.CrossSubnetShare
		if prof.Subnets < 2 {
			cross = 0
		}
		same := 1 - cross
		if r.SameSubnet.Encap != "" {
			r.EncapShare += same
			r.OverheadBytes += same * float64(r.SameSubnet.Overhead)
		}
		if r.CrossSubnet.Encap != "" {
			r.EncapShare += cross
			r.OverheadBytes += cross * float64(r.CrossSubnet.Overhead)
		}
		r.Unroutable = prof.Subnets >= 2 && r.CrossSubnet.Encap == "" &&
			(r.CrossSubnet.ViaDefault || r.CrossSubnet.ViaRouter || r.CrossSubnet.Dev == "unreachable")
		newConns := prof.Traffic.ConnectionsPerSecond * prof.Traffic.NewConnectionShare
		r.FirstPacketCPU = r.Measure.FirstPacketMedian * NanosecondsPerRule * 1e-9 * newConns
		// Every node applies every endpoint change.
		r.ChurnBytesPerSecond = r.Measure.EndpointChangeBytes * prof.Churn.EndpointChangesPerSecond
		r.Features = FeaturesOf(r.Mode)
	}
	rep.Rows = rows
	rep.Curves = curves(rows, sizes, &prof)
	rep.Differences = Differences()
	rep.Recommendation = recommend(rep)
	var err error
	if rep.Spread, err = spread(&prof); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	return rep, nil
}

func sampleList(s []Sample) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%d nodes × %d Services", x.Nodes, x.Services)
	}
	return out
}

// fit evaluates, field by field, the plane through the samples at (services, nodes).
func fit(ms []Measure, sizes []Sample, services, nodes int) Measure {
	out := ms[0]
	if len(ms) == 1 {
		return out
	}
	of := out.fields()
	f0 := ms[0].fields()
	for k, sz := range sizes[1:] {
		fk := ms[k+1].fields()
		switch {
		case sz.Services != sizes[0].Services:
			for i := range of {
				slope := (*fk[i] - *f0[i]) / float64(sz.Services-sizes[0].Services)
				*of[i] += slope * float64(services-sizes[0].Services)
			}
		case sz.Nodes != sizes[0].Nodes:
			// Only routes grow with the nodes (one per other node's pod block); everything else
			// is per Service and endpoint, spread over the profile's nodes at every sample, and
			// differs between node samples only by which endpoints happen to be rendered nodes.
			slope := (ms[k+1].Routes - ms[0].Routes) / float64(sz.Nodes-sizes[0].Nodes)
			out.Routes += slope * float64(nodes-sizes[0].Nodes)
		}
	}
	for i := range of {
		*of[i] = math.Max(0, math.Round(*of[i]))
	}
	return out
}

// curves gives each mode's objects and worst first-packet rules at Service counts up to the
// profile's (first pod network's row, whose kube-proxy state does not depend on the CNI
// beyond a few node addresses).
func curves(rows []Row, sizes []Sample, p *Profile) []Curve {
	var points []int
	for _, f := range []float64{0.01, 0.1, 0.25, 0.5, 0.75, 1} {
		if s := int(float64(p.Services) * f); s >= 1 && (len(points) == 0 || points[len(points)-1] != s) {
			points = append(points, s)
		}
	}
	var out []Curve
	for _, mode := range ProxyModes() {
		for _, r := range rows {
			if r.Mode != mode {
				continue
			}
			c := Curve{Mode: mode}
			for _, s := range points {
				var m Measure
				if len(sizes) > 1 && sizes[1].Services != sizes[0].Services {
					m = fit(r.Samples[:2], sizes[:2], s, sizes[0].Nodes)
				} else {
					// One sample: a line through the origin of the Service-dependent part is not
					// known; show the measured value at the profile's size only.
					if s != p.Services {
						continue
					}
					m = r.Measure
				}
				c.Points = append(c.Points, CurvePoint{Services: s, Objects: m.Objects, FirstPacketWorst: m.FirstPacketWorst})
			}
			out = append(out, c)
			break
		}
	}
	return out
}

// recommend scores each row: first-packet CPU, control-plane bytes, encapsulation overhead,
// unroutable pod traffic and deprecation, weighted for the profile; lower is better.
func recommend(rep *Report) Recommendation {
	p := &rep.Profile
	rows := rep.Rows
	for i := range rows {
		r := &rows[i]
		var reasons []string
		score := 0.0
		// CPU: percent of a core.
		cpu := r.FirstPacketCPU * 100
		score += cpu
		reasons = append(reasons, fmt.Sprintf("first packet examines %.0f rules for the median Service (%.0f worst): %.2f%% of a core at %.0f new connections/s",
			r.Measure.FirstPacketMedian, r.Measure.FirstPacketWorst, cpu, p.Traffic.ConnectionsPerSecond*p.Traffic.NewConnectionShare))
		// Control plane: 1 point per 100 KB/s rewritten on every node.
		churn := r.ChurnBytesPerSecond / 100e3
		score += churn
		reasons = append(reasons, fmt.Sprintf("an endpoint change rewrites %s (full sync %s): %s/s at %.1f changes/s",
			bytesStr(r.Measure.EndpointChangeBytes), bytesStr(r.Measure.FullSyncBytes), bytesStr(r.ChurnBytesPerSecond), p.Churn.EndpointChangesPerSecond))
		// Encapsulation: 1 point per byte of mean overhead per packet.
		score += r.OverheadBytes
		reasons = append(reasons, fmt.Sprintf("%.0f%% of pod-to-pod packets encapsulated (%.1f bytes of outer headers per packet on average), pod MTU %d",
			100*r.EncapShare, r.OverheadBytes, r.PodMTU))
		if r.Unroutable {
			score += 1000
			how := "by the default route"
			if !r.CrossSubnet.ViaDefault {
				how = "unencapsulated through the subnet's router"
			}
			reasons = append(reasons, fmt.Sprintf("cross-subnet pod traffic leaves %s (dev %s, route %s): works only if the underlay routes pod CIDRs (cloud route tables, BGP peering with the routers, source/destination checks off)", how, r.CrossSubnet.Dev, r.CrossSubnet.Route))
		}
		if t := max(r.SameSubnet.TunnelMTU, r.CrossSubnet.TunnelMTU); t > 0 && r.PodMTU > t {
			score += 5
			reasons = append(reasons, fmt.Sprintf("pods get MTU %d but the tunnel carries %d: full-size packets depend on path MTU discovery", r.PodMTU, t))
		}
		if r.Mode == cluster.ProxyIPVS {
			score += 50
			reasons = append(reasons, "IPVS mode is deprecated since Kubernetes 1.35 (gate off in 1.40, removal planned for 1.43): a migration is ahead")
		}
		if r.Mode == cluster.ProxyNFTables {
			reasons = append(reasons, "needs kernel ≥ 5.13 and nft ≥ 1.0.0 on the nodes; NodePorts only on the primary IP by default")
		}
		r.Score = math.Round(score*100) / 100
		r.Reasons = reasons
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return rows[idx[a]].Score < rows[idx[b]].Score })
	var rec Recommendation
	for k, i := range idx {
		rows[i].Rank = k + 1
		rec.Ranked = append(rec.Ranked, rows[i].Name())
	}
	best := rows[idx[0]]
	rec.Best = best.Name()
	rec.Reasons = append([]string{fmt.Sprintf("%s scores lowest (%.2f: percent of a core for first packets + 100 KB/s rewritten per node + mean encapsulation bytes per packet, +5 for a pod MTU above the tunnel's, +50 for a deprecated mode, +1000 for pod traffic without its own route)", best.Name(), best.Score)},
		best.Reasons...)
	return rec
}

func bytesStr(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
