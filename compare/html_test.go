package compare

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const chromium = "/usr/bin/chromium"

// TestHTMLRendersInChromium renders the report page in headless Chromium: the screenshot must
// not be blank and the DOM must hold the four charts with their series and bars.
func TestHTMLRendersInChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("headless Chromium not installed at %s (apt-get install -y chromium): %v", chromium, err)
	}
	p, _ := BuiltinProfile("seed")
	rep, err := Compare(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); strings.Contains(s, "<script") || strings.Contains(s, "http://") && !strings.Contains(s, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("page is not self-contained")
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + filepath.Join(dir, "profile")}, args...)
		out, err := exec.CommandContext(ctx, chromium, append(args, "file://"+page)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return out
	}
	shot := filepath.Join(dir, "shot.png")
	run("--screenshot="+shot, "--window-size=1280,1600")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	colours := map[uint32]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
			colours[(r>>12)<<8|(g>>12)<<4|bl>>12] = true
		}
	}
	if total := (b.Dx() / 2) * (b.Dy() / 2); nonWhite < total/50 || len(colours) < 8 {
		t.Errorf("screenshot looks blank: %d of %d sampled pixels not white, %d colours", nonWhite, total, len(colours))
	}
	dom := string(run("--dump-dom"))
	for _, id := range []string{"chart-objects", "chart-firstpacket", "chart-encap", "chart-mtu", "chart-spread"} {
		if !strings.Contains(dom, `<svg id="`+id+`"`) {
			t.Errorf("DOM has no <svg id=%q>", id)
		}
	}
	if n, want := strings.Count(dom, `class="series"`), 2*len(ProxyModes())+len(rep.Spread); n != want {
		t.Errorf("DOM has %d line series, want %d", n, want)
	}
	if n := strings.Count(dom, `class="bar"`); n != 2*len(Networks()) {
		t.Errorf("DOM has %d bars, want %d", n, 2*len(Networks()))
	}
	if !strings.Contains(dom, "Recommendation: "+rep.Recommendation.Best) {
		t.Errorf("DOM lacks the recommendation %q", rep.Recommendation.Best)
	}
}
