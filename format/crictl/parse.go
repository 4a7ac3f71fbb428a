package crictl

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/knet-dev/knet/dataplane/cri"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Problem is a line the parser did not understand.
type Problem struct {
	File string
	Line int
	Text string
	Msg  string
}

func (p Problem) Error() string { return fmt.Sprintf("%s:%d: %s: %q", p.File, p.Line, p.Msg, p.Text) }

// Problems is a list of Problem.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "\n")
}

// Err returns ps as an error, or nil when empty.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// table splits a tabwriter table into header and rows. Columns are cut at the header cells'
// start columns (so empty cells survive); rows that do not line up (pasted, whitespace
// squeezed) fall back to splitting on runs of two or more blanks.
type table struct {
	header []string
	starts []int
}

func newTableFrom(line string) table {
	t := table{}
	for _, loc := range splitLoc(line) {
		t.header = append(t.header, line[loc[0]:loc[1]])
		t.starts = append(t.starts, loc[0])
	}
	return t
}

// splitLoc returns the [start, end) of each cell: cells are separated by two or more
// blanks or by tabs (a single space belongs to the cell, as in "POD ID").
func splitLoc(line string) [][2]int {
	var out [][2]int
	end := len(strings.TrimRight(line, " \t"))
	i := 0
	for i < end {
		for i < end && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		start := i
		for i < end {
			if line[i] == '\t' || line[i] == ' ' && i+1 < end && (line[i+1] == ' ' || line[i+1] == '\t') {
				break
			}
			i++
		}
		if i > start {
			out = append(out, [2]int{start, i})
		}
	}
	return out
}

func (t table) cells(line string) []string {
	aligned := len(line) >= t.starts[len(t.starts)-1]
	for _, st := range t.starts[1:] {
		if st > len(line) || st > 0 && line[st-1] != ' ' {
			aligned = false
			break
		}
	}
	if aligned {
		out := make([]string, len(t.starts))
		for i, st := range t.starts {
			end := len(line)
			if i+1 < len(t.starts) {
				end = t.starts[i+1]
			}
			out[i] = strings.TrimSpace(line[st:end])
		}
		return out
	}
	var out []string
	for _, loc := range splitLoc(line) {
		out = append(out, line[loc[0]:loc[1]])
	}
	return out
}

// ParseDuration inverts go-units HumanDuration for the CREATED column ("4 minutes ago"),
// returning a representative duration that prints back identically.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), " ago")
	switch s {
	case "Less than a second":
		return 0, nil
	case "About a minute":
		return time.Minute, nil
	case "About an hour":
		return time.Hour, nil
	}
	n, unit, ok := strings.Cut(s, " ")
	v, err := strconv.Atoi(n)
	if !ok || err != nil {
		return 0, fmt.Errorf("not a go-units duration: %q", s)
	}
	d := time.Duration(v)
	switch strings.TrimSuffix(unit, "s") {
	case "second":
		return d * time.Second, nil
	case "minute":
		return d * time.Minute, nil
	case "hour":
		return d * time.Hour, nil
	case "day":
		return d * 24 * time.Hour, nil
	case "week":
		return d * 7 * 24 * time.Hour, nil
	case "month":
		return d * 30 * 24 * time.Hour, nil
	case "year":
		return d * 365 * 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("unknown duration unit %q", unit)
}

func lines(data []byte) []string {
	s := strings.TrimSuffix(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ParsePS reads `crictl ps [-a]` table output (any header generation, or `-q` IDs) into s.
// CreatedAt is now minus the CREATED duration. It returns the crictl version range the
// header implies (as a version for Options.Version) and what it could not read.
func ParsePS(s *cri.State, file string, data []byte, now time.Time) (string, Problems) {
	var probs Problems
	ls := lines(data)
	if len(ls) == 0 {
		return DefaultVersion, nil
	}
	if !strings.HasPrefix(ls[0], "CONTAINER") {
		for i, l := range ls {
			id := strings.TrimSpace(l)
			if id == "" {
				continue
			}
			if strings.ContainsAny(id, " \t") {
				probs = append(probs, Problem{file, i + 1, l, "not a crictl ps table (no CONTAINER header) nor a -q id"})
				continue
			}
			s.Containers = append(s.Containers, &cri.Container{ID: id, State: cri.ContainerUnknown})
		}
		return DefaultVersion, probs
	}
	t := newTableFrom(ls[0])
	version := map[int]string{7: "1.23.0", 8: "1.31.0", 9: "1.32.0"}[len(t.header)]
	if t.header[0] == "CONTAINER ID" && len(t.header) == 7 {
		version = "1.14.0"
	} else if t.header[0] != "CONTAINER" {
		version = ""
	}
	if version == "" {
		probs = append(probs, Problem{file, 1, ls[0], fmt.Sprintf("unknown crictl ps header with %d columns", len(t.header))})
		return DefaultVersion, probs
	}
	for i, l := range ls[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		c := t.cells(l)
		if len(c) != len(t.header) {
			probs = append(probs, Problem{file, i + 2, l, fmt.Sprintf("%d cells, header has %d", len(c), len(t.header))})
			continue
		}
		d, err := ParseDuration(c[2])
		if err != nil {
			probs = append(probs, Problem{file, i + 2, l, err.Error()})
		}
		att, err := strconv.ParseUint(c[5], 10, 32)
		if err != nil {
			probs = append(probs, Problem{file, i + 2, l, "bad ATTEMPT " + strconv.Quote(c[5])})
		}
		ct := &cri.Container{ID: c[0], Image: c[1], CreatedAt: now.Add(-d), State: cri.ContainerState(c[3]),
			Name: c[4], Attempt: uint32(att), PodSandboxID: c[6], Labels: map[string]string{}}
		switch ct.State {
		case cri.ContainerCreated, cri.ContainerRunning, cri.ContainerExited, cri.ContainerUnknown:
		default:
			probs = append(probs, Problem{file, i + 2, l, "unknown container state " + strconv.Quote(c[3])})
		}
		if len(c) >= 8 {
			ct.Labels[LabelPodName] = c[7]
		}
		if len(c) >= 9 {
			ct.Labels[LabelPodNamespace] = c[8]
		}
		ct.Labels[LabelContainer] = c[4]
		s.Containers = append(s.Containers, ct)
	}
	return version, probs
}

// ParsePods reads `crictl pods` table output (with or without RUNTIME, or `-q`) into s.
func ParsePods(s *cri.State, file string, data []byte, now time.Time) (string, Problems) {
	var probs Problems
	ls := lines(data)
	if len(ls) == 0 {
		return DefaultVersion, nil
	}
	if !strings.HasPrefix(ls[0], "POD ID") {
		for i, l := range ls {
			id := strings.TrimSpace(l)
			if id == "" {
				continue
			}
			if strings.ContainsAny(id, " \t") {
				probs = append(probs, Problem{file, i + 1, l, "not a crictl pods table (no POD ID header) nor a -q id"})
				continue
			}
			s.Sandboxes = append(s.Sandboxes, &cri.Sandbox{ID: id})
		}
		return DefaultVersion, probs
	}
	t := newTableFrom(ls[0])
	version := map[int]string{6: "1.18.0", 7: "1.32.0"}[len(t.header)]
	if version == "" {
		probs = append(probs, Problem{file, 1, ls[0], fmt.Sprintf("unknown crictl pods header with %d columns", len(t.header))})
		return DefaultVersion, probs
	}
	for i, l := range ls[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		c := t.cells(l)
		if len(c) != len(t.header) {
			probs = append(probs, Problem{file, i + 2, l, fmt.Sprintf("%d cells, header has %d", len(c), len(t.header))})
			continue
		}
		d, err := ParseDuration(c[1])
		if err != nil {
			probs = append(probs, Problem{file, i + 2, l, err.Error()})
		}
		att, err := strconv.ParseUint(c[5], 10, 32)
		if err != nil {
			probs = append(probs, Problem{file, i + 2, l, "bad ATTEMPT " + strconv.Quote(c[5])})
		}
		p := &cri.Sandbox{ID: c[0], CreatedAt: now.Add(-d), State: cri.SandboxState(c[2]), Name: c[3],
			Namespace: c[4], Attempt: uint32(att)}
		if p.State != cri.SandboxReady && p.State != cri.SandboxNotReady {
			probs = append(probs, Problem{file, i + 2, l, "unknown pod state " + strconv.Quote(c[2])})
		}
		if len(c) >= 7 && c[6] != "(default)" {
			p.RuntimeHandler = c[6]
		}
		s.Sandboxes = append(s.Sandboxes, p)
	}
	return version, probs
}

var containerStates = map[runtimeapi.ContainerState]cri.ContainerState{
	runtimeapi.ContainerState_CONTAINER_CREATED: cri.ContainerCreated,
	runtimeapi.ContainerState_CONTAINER_RUNNING: cri.ContainerRunning,
	runtimeapi.ContainerState_CONTAINER_EXITED:  cri.ContainerExited,
	runtimeapi.ContainerState_CONTAINER_UNKNOWN: cri.ContainerUnknown,
}

// ParsePSJSON reads `crictl ps -o json` (a runtime.v1 ListContainersResponse in protojson).
func ParsePSJSON(s *cri.State, file string, data []byte) error {
	var r runtimeapi.ListContainersResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: crictl ps -o json: %w", file, err)
	}
	for _, c := range r.GetContainers() {
		s.Containers = append(s.Containers, &cri.Container{
			ID: c.GetId(), PodSandboxID: c.GetPodSandboxId(), Name: c.GetMetadata().GetName(),
			Attempt: c.GetMetadata().GetAttempt(), Image: c.GetImage().GetImage(), ImageRef: c.GetImageRef(),
			State: containerStates[c.GetState()], CreatedAt: time.Unix(0, c.GetCreatedAt()).UTC(),
			Labels: c.GetLabels(), Annotations: c.GetAnnotations(),
		})
	}
	return nil
}

// ParsePodsJSON reads `crictl pods -o json` (a runtime.v1 ListPodSandboxResponse in protojson).
func ParsePodsJSON(s *cri.State, file string, data []byte) error {
	var r runtimeapi.ListPodSandboxResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: crictl pods -o json: %w", file, err)
	}
	for _, p := range r.GetItems() {
		st := cri.SandboxNotReady
		if p.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			st = cri.SandboxReady
		}
		s.Sandboxes = append(s.Sandboxes, &cri.Sandbox{
			ID: p.GetId(), Name: p.GetMetadata().GetName(), Namespace: p.GetMetadata().GetNamespace(),
			UID: p.GetMetadata().GetUid(), Attempt: p.GetMetadata().GetAttempt(), State: st,
			CreatedAt: time.Unix(0, p.GetCreatedAt()).UTC(), Labels: p.GetLabels(),
			Annotations: p.GetAnnotations(), RuntimeHandler: p.GetRuntimeHandler(),
		})
	}
	return nil
}
