package explain

import (
	"fmt"
	"strings"
	"time"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/cri"
	"github.com/knet-dev/knet/format/crictl"
	corev1 "k8s.io/api/core/v1"
)

// Kinds of `crictl ps` / `crictl pods` lines.
const (
	KindCRIHeader    Kind = "crictl-header"
	KindCRIContainer Kind = "container"
	KindCRISandbox   Kind = "pod-sandbox"
)

// Crictl explains `crictl ps [-a]` or `crictl pods` table output line by line: the header
// (and which crictl versions print that layout), each container with its pod, namespace and
// state, each sandbox (the pause container holding the pod's network namespace). c may be nil.
func Crictl(file string, data []byte, c *cluster.Cluster) ([]Record, error) {
	lines := splitLines(data)
	if len(lines) == 0 {
		return nil, nil
	}
	pods := map[string]*corev1.Pod{}
	if c != nil {
		for _, p := range c.Objects.Pods {
			pods[podRef(p)] = p
		}
	}
	s := &cri.State{}
	var version string
	var probs crictl.Problems
	isPods := strings.HasPrefix(lines[0], "POD ID")
	if isPods {
		version, probs = crictl.ParsePods(s, file, data, time.Time{})
	} else {
		version, probs = crictl.ParsePS(s, file, data, time.Time{})
	}
	bad := map[int]string{}
	for _, p := range probs {
		bad[p.Line] = p.Msg
	}
	out := make([]Record, 0, len(lines))
	row := 0
	for i, ln := range lines {
		rec := Record{File: file, Line: i + 1, Text: ln, Kind: Unknown}
		switch {
		case strings.TrimSpace(ln) == "":
			rec.Meaning = "empty line"
		case i == 0 && (isPods || strings.HasPrefix(ln, "CONTAINER")):
			rec.Kind = KindCRIHeader
			rec.Meaning = headerWords(isPods, version)
		case bad[i+1] != "":
			rec.Meaning = "not understood: " + bad[i+1]
		case isPods && row < len(s.Sandboxes):
			p := s.Sandboxes[row]
			row++
			rec.Kind, rec.Refs.Pod = KindCRISandbox, p.Namespace+"/"+p.Name
			rec.Meaning = fmt.Sprintf("pod sandbox %s of pod %s (%s, attempt %d): the pause container that holds the pod's network namespace, which the CNI wired up", p.ID, rec.Refs.Pod, p.State, p.Attempt)
			placePod(&rec, pods)
		case !isPods && row < len(s.Containers):
			ct := s.Containers[row]
			row++
			ns, name := ct.Labels[crictl.LabelPodNamespace], ct.Labels[crictl.LabelPodName]
			if name == "" {
				rec.Kind = KindCRIContainer
				rec.Meaning = fmt.Sprintf("container %s (%s, %s) in sandbox %s; this crictl layout does not name the pod", ct.Name, ct.ID, ct.State, ct.PodSandboxID)
				break
			}
			if ns == "" {
				for ref := range pods {
					if strings.HasSuffix(ref, "/"+name) {
						ns = strings.TrimSuffix(ref, "/"+name)
					}
				}
			}
			rec.Kind, rec.Refs.Pod = KindCRIContainer, ns+"/"+name
			rec.Meaning = fmt.Sprintf("container %q of pod %s, %s (restart attempt %d), in sandbox %s which owns the pod's network namespace", ct.Name, rec.Refs.Pod, ct.State, ct.Attempt, ct.PodSandboxID)
			placePod(&rec, pods)
		default:
			rec.Meaning = "not a crictl ps or pods row"
		}
		out = append(out, rec)
	}
	return out, nil
}

func placePod(rec *Record, pods map[string]*corev1.Pod) {
	p, ok := pods[rec.Refs.Pod]
	if !ok {
		if len(pods) > 0 {
			rec.Meaning += "; not a pod of the given objects"
		}
		return
	}
	rec.Refs.Node = p.Spec.NodeName
	if p.Status.PodIP != "" {
		rec.Meaning += fmt.Sprintf("; pod IP %s on node %s", p.Status.PodIP, p.Spec.NodeName)
	}
	if p.Spec.HostNetwork {
		rec.Meaning += " (hostNetwork: shares the node's namespace)"
	}
}

func headerWords(pods bool, v string) string {
	if pods {
		if v == "1.18.0" {
			return "crictl pods header without RUNTIME (crictl before v1.19)"
		}
		return "crictl pods header (crictl v1.19+: with RUNTIME)"
	}
	switch v {
	case "1.14.0":
		return "crictl ps header of crictl ≤ v1.14 (CONTAINER ID)"
	case "1.23.0":
		return "crictl ps header of crictl v1.15–v1.23 (no POD column)"
	case "1.31.0":
		return "crictl ps header of crictl v1.24–v1.31 (POD, no NAMESPACE)"
	}
	return "crictl ps header of crictl v1.32+ (POD and NAMESPACE columns)"
}
