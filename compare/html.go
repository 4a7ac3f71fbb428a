package compare

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"strings"
)

// modeColors are the series colours, one per kube-proxy mode.
var modeColors = map[string]string{"iptables": "#d9480f", "ipvs": "#1971c2", "nftables": "#2f9e44"}

func esc(s string) string { return html.EscapeString(s) }

// lineChart draws series of (x, y) points as an SVG line chart with axes and a legend.
func lineChart(id, title, xLabel, yLabel string, names []string, xs [][]float64, ys [][]float64) string {
	const W, H, L, R, T, B = 560.0, 300.0, 70.0, 20.0, 30.0, 45.0
	maxX, maxY := 1.0, 1.0
	for i := range xs {
		for k := range xs[i] {
			maxX, maxY = math.Max(maxX, xs[i][k]), math.Max(maxY, ys[i][k])
		}
	}
	maxX, maxY = niceMax(maxX), niceMax(maxY*1.05)
	px := func(x float64) float64 { return L + (W-L-R)*x/maxX }
	py := func(y float64) float64 { return H - B - (H-T-B)*y/maxY }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, id, W, H, W, H, esc(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14" font-weight="bold">%s</text>`, L, esc(title))
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, L, H-B, W-R, H-B)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#333"/>`, L, T, L, H-B)
	for k := 0; k <= 4; k++ {
		y := maxY * float64(k) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%s</text>`, L-4, py(y)+3, esc(compact(y)))
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, L, py(y), W-R, py(y))
		x := maxX * float64(k) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle">%s</text>`, px(x), H-B+14, esc(compact(x)))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" text-anchor="middle">%s</text>`, (L+W-R)/2, H-8, esc(xLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.0f" font-size="11" text-anchor="middle" transform="rotate(-90 14 %.0f)">%s</text>`, (T+H-B)/2, (T+H-B)/2, esc(yLabel))
	for i, name := range names {
		col := modeColors[name]
		var pts []string
		for k := range xs[i] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[i][k]), py(ys[i][k])))
		}
		fmt.Fprintf(&b, `<polyline class="series" fill="none" stroke="%s" stroke-width="2.5" points="%s"/>`, col, strings.Join(pts, " "))
		for k := range xs[i] {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, px(xs[i][k]), py(ys[i][k]), col)
		}
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f" font-size="11">%s</text>`,
			L+10+float64(i)*110, T+2, col, L+26+float64(i)*110, T+12, esc(name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// barChart draws one horizontal bar per label.
func barChart(id, title, unit string, labels []string, values []float64, maxV float64, color string) string {
	const W, rowH, L, T = 560.0, 24.0, 200.0, 30.0
	H := T + rowH*float64(len(labels)) + 10
	if maxV <= 0 {
		maxV = 1
		for _, v := range values {
			maxV = math.Max(maxV, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, id, W, H, W, H, esc(title))
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">%s</text>`, esc(title))
	for i, l := range labels {
		y := T + rowH*float64(i)
		w := (W - L - 80) * values[i] / maxV
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" text-anchor="end">%s</text>`, L-6, y+15, esc(l))
		fmt.Fprintf(&b, `<rect class="bar" x="%.0f" y="%.0f" width="%.1f" height="%.0f" fill="%s"/>`, L, y+3, math.Max(w, 1), rowH-6, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11">%s</text>`, L+math.Max(w, 1)+4, y+15, esc(compact(values[i])+unit))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceMax rounds v up to 1, 2, 4 or 5 × 10^k, so quarter ticks fall on round numbers.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 4, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func compact(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>knet compare: {{.Name}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;background:#fff;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
.rec{background:#ebfbee;border-left:6px solid #2f9e44;padding:10px 16px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart{border:1px solid #ddd;background:#fafafa}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f1f3f5}
.method{color:#555;font-size:13px}
</style></head><body>
<h1>knet compare: {{.Name}}</h1>
<p>{{.Profile}}</p>
<p class="method">Method: {{.Method}}.</p>
<div class="rec"><h2>Recommendation: {{.Best}}</h2><ul>{{range .Reasons}}<li>{{.}}</li>{{end}}</ul></div>
<h2>Charts</h2>
<div class="charts">{{range .Charts}}{{.}}{{end}}</div>
<h2>All combinations</h2>
<table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
<h2>Behaviour differences users trip on</h2>
<table><tr><th>aspect</th><th>iptables</th><th>IPVS</th><th>nftables</th></tr>{{range .Diffs}}<tr><td>{{.Aspect}}</td><td>{{.IPTables}}</td><td>{{.IPVS}}</td><td>{{.NFTables}}</td></tr>{{end}}</table>
<p class="method">Generated by knet compare. Sources for the behaviour table: KEP-3866, KEP-265, Kubernetes virtual-ips docs (reference anchors §D).</p>
</body></html>
`))

// WriteHTML writes the report as a self-contained HTML page with inline SVG charts (no
// scripts, no external resources): objects and first-packet rules against Services per
// kube-proxy mode, encapsulation share and pod MTU per pod network, the recommendation and
// the full table.
func (r *Report) WriteHTML(w io.Writer) error {
	var charts []template.HTML
	var names []string
	var xs, objs, fp [][]float64
	for _, c := range r.Curves {
		var x, o, f []float64
		for _, p := range c.Points {
			x = append(x, float64(p.Services))
			o = append(o, p.Objects)
			f = append(f, p.FirstPacketWorst)
		}
		names = append(names, string(c.Mode))
		xs, objs, fp = append(xs, x), append(objs, o), append(fp, f)
	}
	charts = append(charts,
		template.HTML(lineChart("chart-objects", "Rules and objects per node vs Services", "Services", "objects per node", names, xs, objs)),
		template.HTML(lineChart("chart-firstpacket", "Rules a first packet examines (worst Service)", "Services", "rules examined", names, xs, fp)))
	var nets []string
	var encap, mtu []float64
	for _, row := range r.Rows {
		if row.Mode != ProxyModes()[0] {
			continue
		}
		nets = append(nets, row.Network.String())
		encap = append(encap, 100*row.EncapShare)
		mtu = append(mtu, float64(row.PodMTU))
	}
	charts = append(charts,
		template.HTML(barChart("chart-encap", "Pod-to-pod packets encapsulated", "%", nets, encap, 100, "#7048e8")),
		template.HTML(barChart("chart-mtu", "Pod MTU per pod network", "", nets, mtu, 0, "#0c8599")))
	var snames []string
	var sx, sy [][]float64
	for _, sp := range r.Spread {
		var x, y []float64
		for i, v := range sp.Shares {
			x, y = append(x, float64(i+1)), append(y, 100*v)
		}
		snames, sx, sy = append(snames, sp.Mode), append(sx, x), append(sy, y)
	}
	if len(snames) > 0 {
		charts = append(charts, template.HTML(lineChart("chart-spread",
			fmt.Sprintf("Spread of %d new connections over one Service's endpoints", SpreadConnections), "endpoint", "% of connections", snames, sx, sy)))
	}
	var rows [][]string
	for i := range r.Rows {
		rows = append(rows, r.cells(&r.Rows[i]))
	}
	return page.Execute(w, map[string]any{
		"Name": r.Profile.Name, "Profile": r.profileLine(), "Method": r.Method,
		"Best": r.Recommendation.Best, "Reasons": r.Recommendation.Reasons,
		"Charts": charts, "Header": header, "Rows": rows, "Diffs": r.Differences,
	})
}
