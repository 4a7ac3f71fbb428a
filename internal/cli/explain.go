package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/explain"
)

// dumpType is the kind of native dump `knet explain` recognised in a file.
type dumpType string

const (
	dumpIPTables  dumpType = "iptables-save"
	dumpNFT       dumpType = "nft"
	dumpIPVSAdm   dumpType = "ipvsadm"
	dumpIPSet     dumpType = "ipset"
	dumpCrictl    dumpType = "crictl"
	dumpIPAddr    dumpType = "ip-addr"
	dumpIPRule    dumpType = "ip-rule"
	dumpIPNeigh   dumpType = "ip-neigh"
	dumpBridgeFDB dumpType = "bridge-fdb"
	dumpIPRoute   dumpType = "ip-route"
	dumpUnknown   dumpType = "unknown"
)

// detectDump recognises a dump from its content; each explainer package function owns its
// format's detection where it has one.
func detectDump(data []byte) dumpType {
	first := ""
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			first = t
			break
		}
	}
	switch {
	case explain.LooksLikeIPTables(data):
		return dumpIPTables
	case explain.LooksLikeNFT(data):
		return dumpNFT
	case strings.HasPrefix(first, "IP Virtual Server version") || strings.HasPrefix(first, "Prot LocalAddress") ||
		strings.HasPrefix(first, "-A -t ") || strings.HasPrefix(first, "-A -u ") || strings.HasPrefix(first, "-A -f ") ||
		strings.HasPrefix(first, "IPVS connection entries"):
		return dumpIPVSAdm
	case strings.HasPrefix(first, "create ") || strings.HasPrefix(first, "Name: "):
		return dumpIPSet
	case explain.LooksLikeCrictl(data):
		return dumpCrictl
	case explain.LooksLikeIPAddr(data):
		return dumpIPAddr
	case explain.LooksLikeIPRule(data):
		return dumpIPRule
	case explain.LooksLikeBridgeFDB(data):
		return dumpBridgeFDB
	case explain.LooksLikeIPNeigh(data):
		return dumpIPNeigh
	case explain.LooksLikeIPRoute(data):
		return dumpIPRoute
	}
	return dumpUnknown
}

func explainFile(file string, data []byte, objs *cluster.Objects) ([]explain.Record, error) {
	// The ip/bridge/crictl explainers read a whole cluster; from --objects only the objects
	// (and what the Node objects say) are known.
	c := explain.ClusterFromObjects(objs)
	if c == nil {
		c = &cluster.Cluster{}
	}
	return explainDump(file, data, c)
}

// explainDump explains one dump knowing the whole cluster (a preset or cluster file).
func explainDump(file string, data []byte, c *cluster.Cluster) ([]explain.Record, error) {
	objs := &c.Objects
	switch detectDump(data) {
	case dumpIPTables:
		return explain.IPTables(file, data, objs)
	case dumpNFT:
		return explain.NFT(file, data, objs)
	case dumpIPVSAdm:
		return explain.IPVSAdm(file, data, objs)
	case dumpIPSet:
		return explain.IPSet(file, data, objs)
	case dumpCrictl:
		return explain.Crictl(file, data, c)
	case dumpIPAddr:
		return explain.IPAddr(file, data, c)
	case dumpIPRule:
		return explain.IPRule(file, data, c)
	case dumpBridgeFDB:
		return explain.BridgeFDB(file, data, c)
	case dumpIPNeigh:
		return explain.IPNeigh(file, data, c)
	case dumpIPRoute:
		return explain.IPRoute(file, data, c)
	}
	return nil, fmt.Errorf("%s: cannot tell what kind of dump this is (knet explain reads iptables-save, nft, ipvsadm, ipset, crictl, ip addr/route/rule/neigh and bridge fdb output)", file)
}

func newExplainCmd(s Streams) *cobra.Command {
	var objects []string
	var output string
	cmd := &cobra.Command{
		Use:   "explain FILE... [--objects FILE...] [-o text|json]",
		Short: "annotate dumps in Kubernetes terms",
		Long: `Annotates every line of native dumps (iptables-save/restore, nft, ipvsadm, ipset, crictl,
ip addr/route/rule/neigh, bridge fdb; the type is detected from the content) in Kubernetes
terms: which Service port, endpoint, pod and node a rule belongs to, which policy it
implements (traffic policies, session affinity, source ranges, no endpoints), why it
masquerades, and which component wrote it (kube-proxy, kubelet, Calico, Docker,
kube-router, firewalld, ufw, ...). With --objects the hashed kube-proxy chain names are
resolved from the Services and EndpointSlices, which matters for large clusters whose
dumps carry no endpoint comments. "-" reads standard input.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var objs *cluster.Objects
			if len(objects) > 0 {
				o, notes, err := cluster.LoadObjects(objects...)
				if err != nil {
					return fmt.Errorf("explain: %w", err)
				}
				for _, n := range notes {
					fmt.Fprintf(s.Err, "knet: note: %s\n", n)
				}
				cluster.DeriveEndpointSlices(&o)
				objs = &o
			}
			var all []explain.Record
			for _, f := range args {
				var data []byte
				var err error
				if f == "-" {
					data, err = io.ReadAll(s.In)
				} else {
					data, err = os.ReadFile(f)
				}
				if err != nil {
					return fmt.Errorf("explain: %w", err)
				}
				recs, err := explainFile(f, data, objs)
				if err != nil {
					return fmt.Errorf("explain: %w", err)
				}
				all = append(all, recs...)
			}
			switch output {
			case "json":
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				if all == nil {
					all = []explain.Record{}
				}
				return enc.Encode(all)
			case "text", "":
				return writeExplainText(s.Out, all, len(args) > 1)
			}
			return fmt.Errorf("explain: unknown output %q (want text or json)", output)
		},
	}
	cmd.Flags().StringSliceVar(&objects, "objects", nil, "Kubernetes objects to resolve names against (YAML/JSON); repeatable")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// writeExplainText prints each line, then its annotation indented; structure lines (blank,
// comments, *table, COMMIT) get no annotation.
func writeExplainText(w io.Writer, recs []explain.Record, multi bool) error {
	var b strings.Builder
	for _, r := range recs {
		if multi {
			fmt.Fprintf(&b, "%s:%d: ", r.File, r.Line)
		}
		b.WriteString(r.Text)
		b.WriteByte('\n')
		if r.Kind == explain.KindStructure {
			continue
		}
		fmt.Fprintf(&b, "    [%s] %s", r.Kind, r.Meaning)
		var refs []string
		for _, kv := range [][2]string{{"service", r.Refs.Service}, {"port", r.Refs.Port}, {"endpoint", r.Refs.Endpoint}, {"pod", r.Refs.Pod}, {"node", r.Refs.Node}} {
			if kv[1] != "" {
				refs = append(refs, kv[0]+"="+kv[1])
			}
		}
		if len(refs) > 0 {
			fmt.Fprintf(&b, " {%s}", strings.Join(refs, " "))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
