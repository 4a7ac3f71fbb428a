package simulate

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// WriteTable writes a report as an aligned text table.
func WriteTable(w io.Writer, r *Report) error {
	title := string(r.Mode)
	if r.Mode == IPVS {
		title += " " + string(r.Scheduler)
	}
	fmt.Fprintf(w, "%s: %d connections to %s", title, r.Total, r.Service)
	if r.Failed > 0 {
		fmt.Fprintf(w, " (%d found no real server)", r.Failed)
	}
	fmt.Fprintln(w)
	width := len("ENDPOINT")
	for _, row := range r.Rows {
		if n := len(label(row)); n > width {
			width = n
		}
	}
	fmt.Fprintf(w, "%-*s  %11s  %7s  %8s\n", width, "ENDPOINT", "CONNECTIONS", "SHARE", "EXPECTED")
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%-*s  %11d  %6.2f%%  %7.2f%%\n", width, label(row), row.Connections, 100*row.Share, 100*row.Expected)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func label(r Row) string {
	if r.Name != "" {
		return r.Endpoint + " (" + r.Name + ")"
	}
	return r.Endpoint
}

// WriteChart writes a text bar chart of the shares (40 columns is 100%).
func WriteChart(w io.Writer, r *Report) error {
	width := 0
	for _, row := range r.Rows {
		if n := len(row.Endpoint); n > width {
			width = n
		}
	}
	for _, row := range r.Rows {
		n := int(row.Share*40 + 0.5)
		fmt.Fprintf(w, "%-*s |%s%s| %5.1f%%\n", width, row.Endpoint, strings.Repeat("#", n), strings.Repeat(" ", 40-n), 100*row.Share)
	}
	return nil
}

// WriteSVG writes the reports as one SVG bar chart: a group of bars per report (measured
// share) with a tick at the expected share.
func WriteSVG(w io.Writer, reps []*Report) error {
	const rowH, barW, left = 18, 400, 260
	rows := 0
	for _, r := range reps {
		rows += len(r.Rows) + 2
	}
	h := rows*rowH + 20
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="12">`+"\n", left+barW+80, h)
	y := 20
	for _, r := range reps {
		title := string(r.Mode)
		if r.Mode == IPVS {
			title += " " + string(r.Scheduler)
		}
		fmt.Fprintf(w, `<text x="4" y="%d" font-weight="bold">%s: %d connections to %s</text>`+"\n", y, html.EscapeString(title), r.Total, html.EscapeString(r.Service))
		y += rowH
		for _, row := range r.Rows {
			bw := int(row.Share * barW)
			ex := left + int(row.Expected*barW)
			fmt.Fprintf(w, `<text x="4" y="%d">%s</text>`, y, html.EscapeString(label(row)))
			fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="#4a7bd0"/>`, left, y-12, bw, rowH-4)
			fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d04a4a" stroke-width="2"/>`, ex, y-14, ex, y+4)
			fmt.Fprintf(w, `<text x="%d" y="%d">%.1f%%</text>`+"\n", left+barW+6, y, 100*row.Share)
			y += rowH
		}
		y += rowH
	}
	_, err := fmt.Fprintln(w, "</svg>")
	return err
}
