package cluster

// The cluster file.
//
// A cluster file is one YAML document describing a cluster's shape plus its workloads as
// standard Kubernetes objects:
//
//	apiVersion: knet.dev/v1alpha1
//	kind: Cluster
//	metadata:
//	  name: my-cluster
//	description: Calico IPIP CrossSubnet + kube-proxy iptables, two AZs
//	created: "2026-11-20T08:00:00Z"   # creationTimestamp of derived objects (default: the Unix epoch)
//	podCIDR: 10.0.0.0/16              # cluster CIDR (Calico IP pool, kube-controller-manager --cluster-cidr)
//	serviceCIDR: 10.1.0.0/16          # the `kubernetes` Service gets its first address
//	cni:
//	  plugin: calico                  # calico | kube-router | flannel
//	  mode: IPIPCrossSubnet           # calico: IPIPAlways IPIPCrossSubnet Never VXLANAlways VXLANCrossSubnet
//	                                  # kube-router: overlay-subnet overlay-full none; flannel: vxlan host-gw
//	  version: v3.31.0                # default per plugin: calico v3.31.0, kube-router v2.11.0, flannel v0.28.9
//	  blockSize: 24                   # pod block prefix length (calico default 26, others 24)
//	  mtu: 1500                       # host uplink MTU
//	kubeProxy:
//	  mode: iptables                  # iptables | ipvs | nftables
//	  version: v1.35.0
//	  config:                         # optional, a kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration
//	    apiVersion: kubeproxy.config.k8s.io/v1alpha1
//	    kind: KubeProxyConfiguration
//	    mode: iptables
//	nodes:
//	- name: ip-172-31-5-31
//	  ip: 172.31.5.31
//	  subnet: 172.31.0.0/20
//	  zone: us-east-1a
//	  gateway: 172.31.0.1             # default: the subnet's first address
//	  role: worker                    # control-plane | worker (default worker)
//	  podCIDR: 10.0.7.0/24            # optional, allocated by IPAM when absent (see ipam.go)
//	  interface: eth0                 # default eth0
//	objects:                          # Kubernetes objects inline (v1 Service/Pod/Node, EndpointSlice, ...)
//	- apiVersion: v1
//	  kind: Pod
//	  ...
//	objectFiles:                      # and/or files of objects, relative to the cluster file
//	- workloads.yaml
//
// Errors name the file and line. Unknown fields are errors.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// SpecAPIVersion and SpecKind identify a cluster file.
const (
	SpecAPIVersion = "knet.dev/v1alpha1"
	SpecKind       = "Cluster"
)

// Default versions, stated once.
const (
	DefaultCalicoVersion     = "v3.31.0"
	DefaultKubeRouterVersion = "v2.11.0"
	DefaultFlannelVersion    = "v0.28.9"
	DefaultKubeProxyVersion  = "v1.35.0"
	DefaultCalicoBlockSize   = 26
	DefaultNodeBlockSize     = 24
	DefaultMTU               = 1500
	DefaultInterface         = "eth0"
)

// Node roles.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
)

// Calico modes.
const (
	CalicoIPIPAlways       = "IPIPAlways"
	CalicoIPIPCrossSubnet  = "IPIPCrossSubnet"
	CalicoNever            = "Never"
	CalicoVXLANAlways      = "VXLANAlways"
	CalicoVXLANCrossSubnet = "VXLANCrossSubnet"
)

// kube-router modes.
const (
	KubeRouterOverlaySubnet = "overlay-subnet"
	KubeRouterOverlayFull   = "overlay-full"
	KubeRouterNoOverlay     = "none"
)

// Flannel modes.
const (
	FlannelVXLAN  = "vxlan"
	FlannelHostGW = "host-gw"
)

// pos is a YAML scalar with the line it came from.
type pos struct {
	Value string
	Line  int
}

func (p *pos) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a scalar", n.Line)
	}
	p.Value, p.Line = n.Value, n.Line
	return nil
}

type specFile struct {
	APIVersion pos `yaml:"apiVersion"`
	Kind       pos `yaml:"kind"`
	Metadata   struct {
		Name pos `yaml:"name"`
	} `yaml:"metadata"`
	Description string     `yaml:"description"`
	Created     pos        `yaml:"created"`
	PodCIDR     pos        `yaml:"podCIDR"`
	ServiceCIDR pos        `yaml:"serviceCIDR"`
	CNI         specCNI    `yaml:"cni"`
	KubeProxy   specProxy  `yaml:"kubeProxy"`
	Nodes       []specNode `yaml:"nodes"`
	Objects     yaml.Node  `yaml:"objects"`
	ObjectFiles []pos      `yaml:"objectFiles"`
}

type specCNI struct {
	Plugin    pos `yaml:"plugin"`
	Mode      pos `yaml:"mode"`
	Version   pos `yaml:"version"`
	BlockSize int `yaml:"blockSize"`
	MTU       int `yaml:"mtu"`
}

type specProxy struct {
	Mode    pos       `yaml:"mode"`
	Version pos       `yaml:"version"`
	Config  yaml.Node `yaml:"config"`
}

type specNode struct {
	Line      int `yaml:"-"`
	Name      pos `yaml:"name"`
	IP        pos `yaml:"ip"`
	Subnet    pos `yaml:"subnet"`
	Zone      pos `yaml:"zone"`
	Gateway   pos `yaml:"gateway"`
	Role      pos `yaml:"role"`
	PodCIDR   pos `yaml:"podCIDR"`
	Interface pos `yaml:"interface"`
}

var specNodeFields = map[string]bool{"name": true, "ip": true, "subnet": true, "zone": true,
	"gateway": true, "role": true, "podCIDR": true, "interface": true}

func (n *specNode) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a node must be a mapping", v.Line)
	}
	// A custom unmarshaler does not inherit the decoder's KnownFields: check by hand.
	for i := 0; i+1 < len(v.Content); i += 2 {
		if k := v.Content[i]; !specNodeFields[k.Value] {
			return fmt.Errorf("line %d: field %s not found in a node (have name, ip, subnet, zone, gateway, role, podCIDR, interface)", k.Line, k.Value)
		}
	}
	type plain specNode
	var p plain
	if err := v.Decode(&p); err != nil {
		return err
	}
	*n = specNode(p)
	n.Line = v.Line
	return nil
}

// ObjectsDecoder decodes the Kubernetes objects of one YAML or JSON stream; file names the
// stream in errors and notes. cluster.DecodeObjects has this signature.
type objectsDecoder func(r io.Reader, file string) (Objects, []Note, error)

// LoadCluster reads a cluster file (see the format above), decodes its objects, fills
// defaults, derives the Node objects, the `kubernetes` Service and EndpointSlice and the
// EndpointSlices of selector Services when absent, and assigns pod IPs (see ipam.go).
func LoadCluster(file string) (*Cluster, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read cluster file: %w", err)
	}
	return ParseCluster(data, file, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(file), name)
		}
		return os.ReadFile(name)
	})
}

// ParseCluster parses a cluster file's bytes; file names it in errors, readFile reads the
// files named under objectFiles (nil forbids them).
func ParseCluster(data []byte, file string, readFile func(name string) ([]byte, error)) (*Cluster, error) {
	c, err := parseSpec(data, file, readFile, DecodeObjects)
	if err != nil {
		return nil, err
	}
	if err := c.complete(file); err != nil {
		return nil, err
	}
	return c, nil
}

// yamlErr turns yaml.v3's "line N: msg" errors into "file:N: msg".
func yamlErr(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var msgs []string
		for _, e := range te.Errors {
			msgs = append(msgs, fileLine(file, e))
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	return errors.New(fileLine(file, strings.TrimPrefix(err.Error(), "yaml: ")))
}

func fileLine(file, msg string) string {
	var n int
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, err := fmt.Sscanf(rest[:i], "%d", &n); err == nil {
				return fmt.Sprintf("%s:%d: %s", file, n, rest[i+2:])
			}
		}
	}
	return file + ": " + msg
}

func lineErr(file string, line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
}

func parseSpec(data []byte, file string, readFile func(string) ([]byte, error), decode objectsDecoder) (*Cluster, error) {
	var s specFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty cluster file", file)
		}
		return nil, yamlErr(file, err)
	}
	if s.APIVersion.Value != SpecAPIVersion || s.Kind.Value != SpecKind {
		return nil, lineErr(file, max(s.Kind.Line, 1), "not a cluster file: want apiVersion %s, kind %s; got %q, %q",
			SpecAPIVersion, SpecKind, s.APIVersion.Value, s.Kind.Value)
	}
	c := &Cluster{Name: s.Metadata.Name.Value, Description: strings.TrimSpace(s.Description)}
	if c.Name == "" {
		return nil, lineErr(file, 1, "metadata.name is required")
	}
	var err error
	if s.Created.Value != "" {
		c.Created, err = time.Parse(time.RFC3339, s.Created.Value)
		if err != nil {
			return nil, lineErr(file, s.Created.Line, "created: %v", err)
		}
	}
	if c.PodCIDR, err = prefixField(file, "podCIDR", s.PodCIDR, true); err != nil {
		return nil, err
	}
	if c.ServiceCIDR, err = prefixField(file, "serviceCIDR", s.ServiceCIDR, true); err != nil {
		return nil, err
	}

	// CNI.
	c.CNI = CNI{Plugin: CNIPlugin(s.CNI.Plugin.Value), Mode: s.CNI.Mode.Value, Version: s.CNI.Version.Value,
		BlockSize: s.CNI.BlockSize, MTU: s.CNI.MTU}
	if err := c.CNI.defaults(); err != nil {
		return nil, lineErr(file, max(s.CNI.Plugin.Line, s.CNI.Mode.Line, 1), "cni: %v", err)
	}
	if c.CNI.BlockSize < c.PodCIDR.Bits() || c.CNI.BlockSize > 32 {
		return nil, lineErr(file, max(s.CNI.Plugin.Line, 1), "cni.blockSize %d must be between the podCIDR length %d and 32", c.CNI.BlockSize, c.PodCIDR.Bits())
	}

	// kube-proxy.
	c.Proxy = Proxy{Mode: ProxyMode(s.KubeProxy.Mode.Value), Version: s.KubeProxy.Version.Value}
	if c.Proxy.Mode == "" {
		c.Proxy.Mode = ProxyIPTables
	}
	switch c.Proxy.Mode {
	case ProxyIPTables, ProxyIPVS, ProxyNFTables:
	default:
		return nil, lineErr(file, s.KubeProxy.Mode.Line, "kubeProxy.mode %q: want iptables, ipvs or nftables", c.Proxy.Mode)
	}
	if c.Proxy.Version == "" {
		c.Proxy.Version = DefaultKubeProxyVersion
	}

	// Nodes.
	if len(s.Nodes) == 0 {
		return nil, lineErr(file, 1, "nodes: at least one node is required")
	}
	seen := map[string]int{}
	for _, sn := range s.Nodes {
		n := Node{Name: sn.Name.Value, Zone: sn.Zone.Value, Role: sn.Role.Value, Interface: sn.Interface.Value}
		if n.Name == "" {
			return nil, lineErr(file, sn.Line, "node: name is required")
		}
		if l, dup := seen[n.Name]; dup {
			return nil, lineErr(file, sn.Name.Line, "node %q already defined at line %d", n.Name, l)
		}
		seen[n.Name] = sn.Name.Line
		if n.IP, err = addrField(file, "node "+n.Name+" ip", sn.IP, true); err != nil {
			return nil, err
		}
		if n.Subnet, err = prefixField(file, "node "+n.Name+" subnet", sn.Subnet, true); err != nil {
			return nil, err
		}
		if !n.Subnet.Contains(n.IP) {
			return nil, lineErr(file, sn.Subnet.Line, "node %s: ip %s is not in subnet %s", n.Name, n.IP, n.Subnet)
		}
		if n.Gateway, err = addrField(file, "node "+n.Name+" gateway", sn.Gateway, false); err != nil {
			return nil, err
		}
		if !n.Gateway.IsValid() {
			n.Gateway = n.Subnet.Masked().Addr().Next()
		}
		if n.PodCIDR, err = prefixField(file, "node "+n.Name+" podCIDR", sn.PodCIDR, false); err != nil {
			return nil, err
		}
		if n.PodCIDR.IsValid() && !c.PodCIDR.Contains(n.PodCIDR.Addr()) {
			return nil, lineErr(file, sn.PodCIDR.Line, "node %s: podCIDR %s is outside the cluster podCIDR %s", n.Name, n.PodCIDR, c.PodCIDR)
		}
		if n.PodCIDR.IsValid() && n.PodCIDR.Bits() != c.CNI.BlockSize {
			return nil, lineErr(file, sn.PodCIDR.Line, "node %s: podCIDR %s is not a /%d block (cni.blockSize)", n.Name, n.PodCIDR, c.CNI.BlockSize)
		}
		switch n.Role {
		case "":
			n.Role = RoleWorker
		case RoleWorker, RoleControlPlane:
		default:
			return nil, lineErr(file, sn.Role.Line, "node %s: role %q: want control-plane or worker", n.Name, n.Role)
		}
		if n.Interface == "" {
			n.Interface = DefaultInterface
		}
		c.Nodes = append(c.Nodes, n)
	}

	// Objects: inline, the proxy configuration, then files.
	var all Objects
	var notes []Note
	lines := strings.SplitAfter(string(data), "\n")
	if s.Objects.Kind != 0 {
		if s.Objects.Kind != yaml.SequenceNode {
			return nil, lineErr(file, s.Objects.Line, "objects: expected a list of Kubernetes objects")
		}
		objs, n, err := decodeItems(lines, s.Objects.Content, file, decode)
		if err != nil {
			return nil, err
		}
		notes = append(notes, n...)
		all.Append(objs)
	}
	if s.KubeProxy.Config.Kind != 0 {
		if s.KubeProxy.Config.Kind != yaml.MappingNode {
			return nil, lineErr(file, s.KubeProxy.Config.Line, "kubeProxy.config: expected a KubeProxyConfiguration")
		}
		objs, n, err := decodeItems(lines, []*yaml.Node{&s.KubeProxy.Config}, file, decode)
		if err != nil {
			return nil, err
		}
		if objs.ProxyConfig == nil {
			return nil, lineErr(file, s.KubeProxy.Config.Line, "kubeProxy.config: no KubeProxyConfiguration found")
		}
		notes = append(notes, n...)
		all.ProxyConfig = objs.ProxyConfig
	}
	for _, f := range s.ObjectFiles {
		if readFile == nil {
			return nil, lineErr(file, f.Line, "objectFiles are not allowed here")
		}
		b, err := readFile(f.Value)
		if err != nil {
			return nil, lineErr(file, f.Line, "objectFiles: %v", err)
		}
		objs, n, err := decode(bytes.NewReader(b), f.Value)
		if err != nil {
			return nil, err
		}
		notes = append(notes, n...)
		if objs.ProxyConfig != nil && all.ProxyConfig != nil {
			return nil, lineErr(file, f.Line, "objectFiles: %s holds a second KubeProxyConfiguration", f.Value)
		}
		if objs.ProxyConfig != nil {
			all.ProxyConfig = objs.ProxyConfig
		}
		all.Append(objs)
	}
	c.Objects = all
	c.Notes = notes
	return c, nil
}

func (c *CNI) defaults() error {
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return fmt.Errorf("mtu %d out of range", c.MTU)
	}
	switch c.Plugin {
	case CNICalico:
		if c.Mode == "" {
			c.Mode = CalicoIPIPAlways
		}
		switch c.Mode {
		case CalicoIPIPAlways, CalicoIPIPCrossSubnet, CalicoNever, CalicoVXLANAlways, CalicoVXLANCrossSubnet:
		default:
			return fmt.Errorf("calico mode %q: want IPIPAlways, IPIPCrossSubnet, Never, VXLANAlways or VXLANCrossSubnet", c.Mode)
		}
		if c.Version == "" {
			c.Version = DefaultCalicoVersion
		}
		if c.BlockSize == 0 {
			c.BlockSize = DefaultCalicoBlockSize
		}
	case CNIKubeRouter:
		if c.Mode == "" {
			c.Mode = KubeRouterOverlaySubnet
		}
		switch c.Mode {
		case KubeRouterOverlaySubnet, KubeRouterOverlayFull, KubeRouterNoOverlay:
		default:
			return fmt.Errorf("kube-router mode %q: want overlay-subnet, overlay-full or none", c.Mode)
		}
		if c.Version == "" {
			c.Version = DefaultKubeRouterVersion
		}
		if c.BlockSize == 0 {
			c.BlockSize = DefaultNodeBlockSize
		}
	case CNIFlannel:
		if c.Mode == "" {
			c.Mode = FlannelVXLAN
		}
		switch c.Mode {
		case FlannelVXLAN, FlannelHostGW:
		default:
			return fmt.Errorf("flannel mode %q: want vxlan or host-gw", c.Mode)
		}
		if c.Version == "" {
			c.Version = DefaultFlannelVersion
		}
		if c.BlockSize == 0 {
			c.BlockSize = DefaultNodeBlockSize
		}
	case "":
		return errors.New("plugin is required (calico, kube-router or flannel)")
	default:
		return fmt.Errorf("plugin %q: want calico, kube-router or flannel", c.Plugin)
	}
	return nil
}

func prefixField(file, what string, p pos, required bool) (netip.Prefix, error) {
	if p.Value == "" {
		if required {
			return netip.Prefix{}, lineErr(file, max(p.Line, 1), "%s is required", what)
		}
		return netip.Prefix{}, nil
	}
	pf, err := netip.ParsePrefix(p.Value)
	if err != nil {
		return netip.Prefix{}, lineErr(file, p.Line, "%s: %v", what, err)
	}
	if pf != pf.Masked() {
		return netip.Prefix{}, lineErr(file, p.Line, "%s: %s has host bits set (did you mean %s?)", what, pf, pf.Masked())
	}
	return pf, nil
}

func addrField(file, what string, p pos, required bool) (netip.Addr, error) {
	if p.Value == "" {
		if required {
			return netip.Addr{}, lineErr(file, max(p.Line, 1), "%s is required", what)
		}
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(p.Value)
	if err != nil {
		return netip.Addr{}, lineErr(file, p.Line, "%s: %v", what, err)
	}
	return a, nil
}

// docLine maps the first line of one document of a decoding stream to the cluster file.
type docLine struct{ stream, orig int }

// decodeItems decodes items (mappings in the cluster file) in one stream, one YAML document
// per item, and maps the line numbers of errors and notes back to the cluster file.
func decodeItems(lines []string, items []*yaml.Node, file string, decode objectsDecoder) (Objects, []Note, error) {
	var stream bytes.Buffer
	var docs []docLine
	line := 1
	for _, item := range items {
		text, err := nodeSource(lines, item)
		if err != nil {
			return Objects{}, nil, lineErr(file, item.Line, "objects: %v", err)
		}
		stream.WriteString("---\n")
		line++
		docs = append(docs, docLine{stream: line, orig: item.Line})
		stream.Write(text)
		line += bytes.Count(text, []byte("\n"))
	}
	toOrig := func(n int) int {
		i := sort.Search(len(docs), func(i int) bool { return docs[i].stream > n }) - 1
		if i < 0 {
			return n
		}
		return docs[i].orig + n - docs[i].stream
	}
	objs, notes, err := decode(&stream, file)
	if err != nil {
		prefix := file + ":"
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			if j := strings.Index(rest, ":"); j > 0 {
				if n, convErr := strconv.Atoi(rest[:j]); convErr == nil {
					return Objects{}, nil, &lineError{msg: fmt.Sprintf("%s:%d%s", file, toOrig(n), rest[j:]), err: err}
				}
			}
		}
		return Objects{}, nil, err
	}
	for i := range notes {
		if notes[i].File == file {
			notes[i].Line = toOrig(notes[i].Line)
		}
	}
	return objs, notes, nil
}

// lineError is a decoder error re-addressed to the cluster file's line; it unwraps to the
// decoder's error.
type lineError struct {
	msg string
	err error
}

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return e.err }

// nodeSource returns the source text of item (a mapping in the file whose lines are lines)
// as a standalone YAML document: a block mapping's own lines, dedented; a flow mapping
// re-encoded (line numbers inside it are then approximate).
func nodeSource(lines []string, item *yaml.Node) ([]byte, error) {
	if item.Style&yaml.FlowStyle != 0 || item.Kind != yaml.MappingNode {
		return yaml.Marshal(item)
	}
	start := item.Line - 1 // 0-based line of the item's first key
	col := item.Column - 1 // 0-based column of the item's keys
	end := len(lines)
	for i := start + 1; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r\n")
		t := strings.TrimLeft(l, " ")
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if len(l)-len(t) < col {
			end = i
			break
		}
	}
	var b strings.Builder
	for i := start; i < end; i++ {
		l := lines[i]
		if i == start {
			// "  - kind: Pod" → "kind: Pod": drop everything before the key column.
			if len(l) >= col {
				l = l[col:]
			}
		} else if len(l) >= col && strings.TrimLeft(l[:col], " ") == "" {
			l = l[col:]
		} else {
			l = strings.TrimLeft(l, " ")
		}
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteString("\n")
		}
	}
	return []byte(b.String()), nil
}
