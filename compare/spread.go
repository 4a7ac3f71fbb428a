package compare

import (
	"fmt"
	"net/netip"

	dpipvs "github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/simulate"
)

// SpreadConnections is how many new connections the spread simulation opens.
const SpreadConnections = 1000

// Spread is how one kube-proxy mode spreads new connections over a Service's endpoints.
type Spread struct {
	Mode string `json:"mode"`
	// Shares are the endpoints' shares of the connections, in endpoint order.
	Shares []float64 `json:"shares"`
	Note   string    `json:"note,omitempty"`
}

// spread simulates SpreadConnections connections from 10 clients to one Service of the
// profile (EndpointsPerService endpoints): iptables' statistic rules and IPVS rr (package
// simulate). nftables' numgen random mod N is uniform like iptables' cascade.
func spread(p *Profile) ([]Spread, error) {
	net := Networks()[0]
	c, err := synthCluster(p, net, ProxyModes()[0], 2*min(p.Subnets, 2), 1)
	if err != nil {
		return nil, err
	}
	node := c.NodeByName(synthNode(0, 0))
	var client netip.Addr
	for _, pod := range c.Objects.Pods {
		if pod.Name == clientPod(node.Name) {
			client, _ = netip.ParseAddr(pod.Status.PodIP)
		}
	}
	ns, name := serviceName(0)
	t := simulate.Target{Service: ns + "/" + name, Node: node.Name, NodeIPs: []netip.Addr{node.IP}}
	base := simulate.Config{Connections: SpreadConnections, Clients: simulate.Clients(client, 10), Seed: 1}
	cfgs, err := simulate.Configs(c.Objects, t, base, true, []dpipvs.Scheduler{dpipvs.RoundRobin})
	if err != nil {
		return nil, fmt.Errorf("spread: %w", err)
	}
	var out []Spread
	for _, cfg := range cfgs {
		rep, err := simulate.Run(cfg)
		if err != nil {
			return nil, fmt.Errorf("spread: %w", err)
		}
		s := Spread{Mode: string(rep.Mode)}
		if rep.Mode == simulate.IPVS {
			s.Note = "scheduler " + string(rep.Scheduler)
		}
		for _, r := range rep.Rows {
			s.Shares = append(s.Shares, r.Share)
		}
		out = append(out, s)
	}
	return out, nil
}
