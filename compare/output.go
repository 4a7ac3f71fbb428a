package compare

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Format is a report output format; the values are the CLI tokens of `knet compare -o`.
type Format string

// Report formats.
const (
	FormatText     Format = "text"
	FormatJSON     Format = "json"
	FormatMarkdown Format = "markdown"
)

// ParseFormat parses an -o value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatText, FormatJSON, FormatMarkdown:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q (want text, json or markdown)", s)
}

// Write prints the report in format f.
func (r *Report) Write(w io.Writer, f Format) error {
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case FormatMarkdown:
		return r.writeMarkdown(w)
	case FormatText, "":
		return r.writeText(w)
	}
	return fmt.Errorf("unknown output format %q", f)
}

func pathStr(p Path) string {
	if p.Encap != "" {
		return fmt.Sprintf("%s (%s +%d)", p.Dev, p.Encap, p.Overhead)
	}
	if p.ViaDefault {
		return p.Dev + " (default route)"
	}
	if p.ViaRouter {
		return p.Dev + " (via router)"
	}
	return p.Dev
}

func objectsStr(r *Row) string {
	m := &r.Measure
	switch r.Mode {
	case "ipvs":
		return fmt.Sprintf("%.0f (%.0f rules, %.0f vs, %.0f rs, %.0f ipset)", m.Objects, m.IPTablesRules, m.IPVSServices, m.IPVSDests, m.IPSetMembers)
	case "nftables":
		return fmt.Sprintf("%.0f (%.0f chains, %.0f rules, %.0f elements)", m.Objects, m.NFTChains, m.NFTRules, m.NFTElements)
	}
	return fmt.Sprintf("%.0f rules", m.IPTablesRules)
}

var header = []string{"RANK", "KUBE-PROXY", "POD NETWORK", "OBJECTS/NODE", "ROUTES", "1ST PACKET RULES (best/median/worst)",
	"FULL SYNC", "PER ENDPOINT CHANGE", "SAME SUBNET", "CROSS SUBNET", "ENCAP", "OVERHEAD B/PKT", "POD MTU", "SCORE"}

func (r *Report) cells(row *Row) []string {
	m := &row.Measure
	return []string{fmt.Sprint(row.Rank), string(row.Mode), row.Network.String(), objectsStr(row), fmt.Sprintf("%.0f", m.Routes),
		fmt.Sprintf("%.0f / %.0f / %.0f", m.FirstPacketBest, m.FirstPacketMedian, m.FirstPacketWorst),
		bytesStr(m.FullSyncBytes), bytesStr(m.EndpointChangeBytes), pathStr(row.SameSubnet), pathStr(row.CrossSubnet),
		fmt.Sprintf("%.0f%%", 100*row.EncapShare), fmt.Sprintf("%.1f", row.OverheadBytes), fmt.Sprint(row.PodMTU), fmt.Sprintf("%.2f", row.Score)}
}

func (r *Report) profileLine() string {
	p := &r.Profile
	return fmt.Sprintf("profile %s: %d nodes in %d subnets, %d Services × %d endpoints (%.0f%% NodePort, %.0f%% ClientIP affinity), "+
		"%.0f connections/s per node (%.0f%% new), %.0f%% of pod traffic crossing subnets, %.1f endpoint changes/s, MTU %d, kube-proxy %s",
		p.Name, p.Nodes, p.Subnets, p.Services, p.EndpointsPerService, 100*p.NodePortShare, 100*p.AffinityShare,
		p.Traffic.ConnectionsPerSecond, 100*p.Traffic.NewConnectionShare, 100*p.Traffic.CrossSubnetShare,
		p.Churn.EndpointChangesPerSecond, p.MTU, p.KubeProxyVersion)
}

func (r *Report) writeText(w io.Writer) error {
	var b strings.Builder
	b.WriteString(r.profileLine() + "\n")
	b.WriteString("method: " + r.Method + "\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i := range r.Rows {
		fmt.Fprintln(tw, strings.Join(r.cells(&r.Rows[i]), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\nrecommendation: " + r.Recommendation.Best + "\n")
	for _, reason := range r.Recommendation.Reasons {
		b.WriteString("  - " + reason + "\n")
	}
	b.WriteString("ranking: " + strings.Join(r.Recommendation.Ranked, ", ") + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func (r *Report) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# knet compare: %s\n\n%s.\n\n%s\n\n", r.Profile.Name, r.profileLine(), "Method: "+r.Method+".")
	fmt.Fprintf(&b, "## Recommendation: %s\n\n", r.Recommendation.Best)
	for _, reason := range r.Recommendation.Reasons {
		fmt.Fprintf(&b, "- %s\n", mdEscape(reason))
	}
	b.WriteString("\n## All combinations\n\n| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for i := range r.Rows {
		c := r.cells(&r.Rows[i])
		for k := range c {
			c[k] = mdEscape(c[k])
		}
		b.WriteString("| " + strings.Join(c, " | ") + " |\n")
	}
	b.WriteString("\n## Features\n\n| kube-proxy | status | schedulers | session affinity | source ranges |\n|---|---|---|---|---|\n")
	for _, m := range ProxyModes() {
		f := FeaturesOf(m)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", m, mdEscape(f.Status), mdEscape(strings.Join(f.Schedulers, ", ")), mdEscape(f.Affinity), mdEscape(f.SourceRanges))
	}
	b.WriteString("\n## Behaviour differences users trip on\n\n| aspect | iptables | IPVS | nftables |\n|---|---|---|---|\n")
	for _, d := range r.Differences {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdEscape(d.Aspect), mdEscape(d.IPTables), mdEscape(d.IPVS), mdEscape(d.NFTables))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
