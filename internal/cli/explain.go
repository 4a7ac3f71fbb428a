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
	dumpIPTables dumpType = "iptables-save"
	dumpUnknown  dumpType = "unknown"
)

// detectDump recognises a dump from its content. Integration point: the ip route, ip addr,
// ipvsadm, ipset and nft explainers (explain.IPRoute, explain.IPAddr, explain.IPVSAdm,
// explain.IPSet, explain.NFT) add their detection here and their call in explainFile.
func detectDump(data []byte) dumpType {
	if explain.LooksLikeIPTables(data) {
		return dumpIPTables
	}
	return dumpUnknown
}

func explainFile(file string, data []byte, objs *cluster.Objects) ([]explain.Record, error) {
	switch detectDump(data) {
	case dumpIPTables:
		return explain.IPTables(file, data, objs)
	}
	return nil, fmt.Errorf("%s: cannot tell what kind of dump this is (knet explain reads iptables-save/iptables-restore text)", file)
}

func newExplainCmd(s Streams) *cobra.Command {
	var objects []string
	var output string
	cmd := &cobra.Command{
		Use:   "explain FILE... [--objects FILE...] [-o text|json]",
		Short: "annotate dumps in Kubernetes terms",
		Long: `Annotates every line of native dumps (iptables-save / iptables-restore text) in Kubernetes
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
