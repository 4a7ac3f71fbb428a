// Package crictl prints and parses what `crictl ps` and `crictl pods` print (cri-tools
// cmd/crictl/{container,sandbox,util}.go): the tabwriter table (minwidth 20, tabwidth 1,
// padding 3), IDs truncated to 13 characters, CREATED as go-units HumanDuration + " ago"
// relative to a given now, `-q`, and the `-o json` output (runtime.v1 ListContainersResponse
// / ListPodSandboxResponse in protojson).
//
// The header layout follows the crictl version (default 1.32.0, the layout of every release
// since v1.32): `crictl ps` ≤1.14 `CONTAINER ID ... POD ID`, 1.15–1.23 `CONTAINER ... POD ID`,
// 1.24–1.31 `... POD ID POD`, ≥1.32 `... POD ID POD NAMESPACE`; `crictl pods` gained
// RUNTIME in v1.19.
package crictl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/knet-dev/knet/dataplane/cri"
	digest "github.com/opencontainers/go-digest"
)

// DefaultVersion is the crictl version whose layout is printed by default.
const DefaultVersion = "1.32.0"

// truncatedIDLen is cri-tools' truncatedIDLen.
const truncatedIDLen = 13

// Pod labels kubelet sets on containers (getPodNameFromLabels / getPodNamespaceFromLabels).
const (
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelPodUID       = "io.kubernetes.pod.uid"
	LabelContainer    = "io.kubernetes.container.name"
)

// Options are crictl's switches that change the table.
type Options struct {
	// Version is the crictl version whose header layout to use ("1.32.0" when empty).
	Version string
	// Now is the time CREATED is computed against (time.Now() in crictl; fixed in tests).
	Now time.Time
	// Quiet is `-q` (full IDs only), NoTrunc `--no-trunc`.
	Quiet, NoTrunc bool
}

func (o Options) minor() int {
	v := o.Version
	if v == "" {
		v = DefaultVersion
	}
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) < 2 {
		return 32
	}
	m, err := strconv.Atoi(parts[1])
	if err != nil {
		return 32
	}
	return m
}

// PSHeader returns the `crictl ps` header cells for a crictl version.
func PSHeader(o Options) []string {
	m := o.minor()
	h := []string{"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"}
	if m <= 14 {
		h[0] = "CONTAINER ID"
	}
	if m >= 24 {
		h = append(h, "POD")
	}
	if m >= 32 {
		h = append(h, "NAMESPACE")
	}
	return h
}

// PodsHeader returns the `crictl pods` header cells for a crictl version.
func PodsHeader(o Options) []string {
	h := []string{"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT"}
	if o.minor() >= 19 {
		h = append(h, "RUNTIME")
	}
	return h
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 20, 1, 3, ' ', 0)
}

func truncID(id, prefix string) string {
	id = strings.TrimPrefix(id, prefix)
	if len(id) > truncatedIDLen {
		id = id[:truncatedIDLen]
	}
	return id
}

// Created returns CREATED as crictl prints it: units.HumanDuration(now - t) + " ago".
func Created(now, t time.Time) string {
	return units.HumanDuration(now.UTC().Sub(t)) + " ago"
}

// PrintPS prints `crictl ps [-q]`: containers newest first.
func PrintPS(w io.Writer, s *cri.State, o Options) error {
	cs := s.SortedContainers()
	if o.Quiet {
		for _, c := range cs {
			if _, err := fmt.Fprintf(w, "%s\n", c.ID); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(w)
	h := PSHeader(o)
	fmt.Fprintln(tw, strings.Join(h, "\t"))
	for _, c := range cs {
		id, image, podID := c.ID, c.Image, c.PodSandboxID
		if !o.NoTrunc {
			id, podID = truncID(id, ""), truncID(podID, "")
			if d, err := digest.Parse(image); err == nil {
				image = truncID(d.String(), string(d.Algorithm())+":")
			}
		}
		row := []string{id, image, Created(o.Now, c.CreatedAt), string(c.State), c.Name,
			strconv.FormatUint(uint64(c.Attempt), 10), podID}
		if len(h) >= 8 {
			row = append(row, labelOr(c.Labels, LabelPodName))
		}
		if len(h) >= 9 {
			row = append(row, labelOr(c.Labels, LabelPodNamespace))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func labelOr(l map[string]string, k string) string {
	if v, ok := l[k]; ok {
		return v
	}
	return "unknown"
}

// PrintPods prints `crictl pods [-q]`: sandboxes newest first.
func PrintPods(w io.Writer, s *cri.State, o Options) error {
	ps := s.SortedSandboxes()
	if o.Quiet {
		for _, p := range ps {
			if _, err := fmt.Fprintf(w, "%s\n", p.ID); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(w)
	h := PodsHeader(o)
	fmt.Fprintln(tw, strings.Join(h, "\t"))
	for _, p := range ps {
		id := p.ID
		if !o.NoTrunc {
			id = truncID(id, "")
		}
		row := []string{id, Created(o.Now, p.CreatedAt), string(p.State), p.Name, p.Namespace,
			strconv.FormatUint(uint64(p.Attempt), 10)}
		if len(h) >= 7 {
			rh := p.RuntimeHandler
			if rh == "" {
				rh = "(default)"
			}
			row = append(row, rh)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}
