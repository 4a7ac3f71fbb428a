//go:build linux

package lab

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is a lab run: every flow's outcome.
type Report struct {
	Cluster  string        `json:"cluster"`
	Kernel   string        `json:"kernel"`
	Outcomes []Outcome     `json:"outcomes"`
	Duration time.Duration `json:"duration"`
}

// Disagreements counts the findings over all flows.
func (r *Report) Disagreements() int {
	n := 0
	for _, o := range r.Outcomes {
		n += len(o.Disagreements)
	}
	return n
}

// RunFlows runs the flows in order.
func (l *Lab) RunFlows(ctx context.Context, flows []Flow) *Report {
	start := time.Now()
	r := &Report{Cluster: l.Cluster.Name, Kernel: kernelRelease()}
	for _, f := range flows {
		if ctx.Err() != nil {
			break
		}
		r.Outcomes = append(r.Outcomes, l.RunFlow(ctx, f))
	}
	r.Duration = time.Since(start)
	return r
}

// WriteText prints the report: per flow, what the kernel did next to what the model said.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s on kernel %s\n", r.Cluster, r.Kernel)
	for _, o := range r.Outcomes {
		f := o.Flow
		to := f.To.String()
		if f.Service != "" {
			to += " (" + f.Service + ")"
		}
		fmt.Fprintf(&b, "\n%s: %s (%s) → %s %s ×%d\n", f.Name, f.From, o.ClientIP, to, f.Kind, f.Count)
		fmt.Fprintf(&b, "  kernel: answered by %s", answerList(o.Answers))
		if o.Failures > 0 {
			fmt.Fprintf(&b, ", %d failed", o.Failures)
		}
		fmt.Fprintf(&b, "; source seen %s\n", sourceList(o.Sources, o.ClientIP.String()))
		fmt.Fprintf(&b, "  crossed: %s\n", strings.Join(o.Crossed, ", "))
		p := o.Predicted
		fmt.Fprintf(&b, "  model (%s): %s", p.Source, predList(p))
		if len(p.Encap) > 0 {
			fmt.Fprintf(&b, "; encapsulated on %s", strings.Join(p.Encap, ", "))
		}
		b.WriteString("\n")
		if o.IPVS != nil {
			fmt.Fprintf(&b, "  ipvs: scheduler %s on %s, %d connections checked one by one, %d mismatches\n", o.IPVS.Scheduler, o.IPVS.Node, o.IPVS.Checked, o.IPVS.Mismatches)
		}
		for _, a := range o.Agreements {
			fmt.Fprintf(&b, "  ok: %s\n", a)
		}
		for _, d := range o.Disagreements {
			fmt.Fprintf(&b, "  DISAGREE: %s\n", d)
		}
	}
	fmt.Fprintf(&b, "\n%d flows, %d disagreements, %s\n", len(r.Outcomes), r.Disagreements(), r.Duration.Round(time.Millisecond))
	_, err := io.WriteString(w, b.String())
	return err
}

func answerList(m map[string]int) string {
	if len(m) == 0 {
		return "nobody"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var out []string
	for _, k := range ks {
		out = append(out, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(out, " ")
}

func sourceList(m map[string]int, client string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var out []string
	for _, k := range ks {
		tag := "masqueraded"
		if k == client {
			tag = "client's own"
		}
		out = append(out, fmt.Sprintf("%s (%s)", k, tag))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}

func predList(p Prediction) string {
	if p.Error != "" {
		return "error: " + p.Error
	}
	var ks []string
	for k := range p.Endpoints {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var out []string
	for _, k := range ks {
		m := ""
		if v, ok := p.Masquerade[k]; ok && v {
			m = " masquerade"
		}
		out = append(out, fmt.Sprintf("%s p=%.4f%s", k, p.Endpoints[k], m))
	}
	return strings.Join(out, ", ")
}
