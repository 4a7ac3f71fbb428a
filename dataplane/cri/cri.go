// Package cri models the pod sandboxes and containers of a node's container runtime as the
// CRI (k8s.io/cri-api runtime/v1) reports them and `crictl` (cri-tools v1.32+) lists them:
// sandbox id, metadata (name, namespace, uid, attempt), state, creation time, labels,
// annotations, runtime handler, and the containers in each sandbox.
package cri

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// SandboxState is a pod sandbox state as crictl prints it.
type SandboxState string

// Pod sandbox states (runtime.v1 PodSandboxState, as crictl prints them).
const (
	SandboxReady    SandboxState = "Ready"
	SandboxNotReady SandboxState = "NotReady"
)

// ContainerState is a container state as crictl prints it.
type ContainerState string

// Container states (runtime.v1 ContainerState, as crictl prints them).
const (
	ContainerCreated ContainerState = "Created"
	ContainerRunning ContainerState = "Running"
	ContainerExited  ContainerState = "Exited"
	ContainerUnknown ContainerState = "Unknown"
)

// CRIState returns the runtime.v1 enum spelling used by `crictl -o json` ("SANDBOX_READY").
func (s SandboxState) CRIState() string {
	if s == SandboxReady {
		return "SANDBOX_READY"
	}
	return "SANDBOX_NOTREADY"
}

// CRIState returns the runtime.v1 enum spelling ("CONTAINER_RUNNING").
func (s ContainerState) CRIState() string { return "CONTAINER_" + strings.ToUpper(string(s)) }

// Sandbox is one pod sandbox (runtime.v1 PodSandbox).
type Sandbox struct {
	// ID is the full 64-hex sandbox id.
	ID        string
	Name      string
	Namespace string
	UID       string
	Attempt   uint32
	State     SandboxState
	CreatedAt time.Time
	Labels    map[string]string
	// Annotations of the sandbox.
	Annotations map[string]string
	// RuntimeHandler is the RuntimeClass handler; empty prints "(default)".
	RuntimeHandler string
	// NetNS is the sandbox's network namespace name (containerd "cni-<uuid>").
	NetNS string
	// IP is the pod IP the CNI assigned (crictl inspectp status.network.ip).
	IP string
}

// Container is one container (runtime.v1 Container).
type Container struct {
	ID           string
	PodSandboxID string
	Name         string
	Attempt      uint32
	// Image is the image reference as the runtime reports it (image.image), ImageRef the
	// resolved id or digest (imageRef).
	Image       string
	ImageRef    string
	State       ContainerState
	CreatedAt   time.Time
	Labels      map[string]string
	Annotations map[string]string
}

// State is all sandboxes and containers of one runtime.
type State struct {
	Sandboxes  []*Sandbox
	Containers []*Container
}

// SandboxByID returns the sandbox whose id is id or starts with id (crictl accepts
// prefixes), or nil.
func (s *State) SandboxByID(id string) *Sandbox {
	for _, p := range s.Sandboxes {
		if p.ID == id || id != "" && strings.HasPrefix(p.ID, id) {
			return p
		}
	}
	return nil
}

// SandboxFor returns the newest sandbox of pod namespace/name, or nil.
func (s *State) SandboxFor(namespace, name string) *Sandbox {
	var best *Sandbox
	for _, p := range s.Sandboxes {
		if p.Namespace == namespace && p.Name == name && (best == nil || p.CreatedAt.After(best.CreatedAt)) {
			best = p
		}
	}
	return best
}

// RunPodSandbox adds a sandbox.
// Equivalent to: `crictl runp POD-CONFIG.json`
func (s *State) RunPodSandbox(p *Sandbox) error {
	if p.ID == "" || p.Name == "" {
		return fmt.Errorf("run pod sandbox: id and name are required (id %q, name %q)", p.ID, p.Name)
	}
	if s.SandboxByID(p.ID) != nil && s.SandboxByID(p.ID).ID == p.ID {
		return fmt.Errorf("run pod sandbox %s: already exists", p.ID)
	}
	if p.State == "" {
		p.State = SandboxReady
	}
	s.Sandboxes = append(s.Sandboxes, p)
	return nil
}

// CreateContainer adds a container to an existing sandbox.
// Equivalent to: `crictl create POD-ID CONTAINER-CONFIG.json POD-CONFIG.json`
func (s *State) CreateContainer(c *Container) error {
	if c.ID == "" || c.Name == "" {
		return fmt.Errorf("create container: id and name are required (id %q, name %q)", c.ID, c.Name)
	}
	if s.SandboxByID(c.PodSandboxID) == nil {
		return fmt.Errorf("create container %s: pod sandbox %q not found", c.Name, c.PodSandboxID)
	}
	if c.State == "" {
		c.State = ContainerRunning
	}
	s.Containers = append(s.Containers, c)
	return nil
}

// SortedSandboxes returns the sandboxes newest first, as crictl pods lists them
// (sort by CreatedAt descending, ties by id).
func (s *State) SortedSandboxes() []*Sandbox {
	out := slices.Clone(s.Sandboxes)
	slices.SortStableFunc(out, func(a, b *Sandbox) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// SortedContainers returns the containers newest first, as crictl ps lists them.
func (s *State) SortedContainers() []*Container {
	out := slices.Clone(s.Containers)
	slices.SortStableFunc(out, func(a, b *Container) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}
