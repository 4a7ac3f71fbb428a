// Package explain annotates native dumps (iptables-save, ip route, ip addr, ipvsadm, ipset,
// nft, crictl) line by line in Kubernetes terms: which Service port, which endpoint, which
// pod block, which owner (kube-proxy, Calico, Docker, ...).
package explain

// Kind says what a line is. "unknown" marks a line that could not be placed.
type Kind string

// Unknown is the kind of a line that could not be placed.
const Unknown Kind = "unknown"

// Refs names the Kubernetes objects a line belongs to ("namespace/name" for namespaced).
type Refs struct {
	Service  string `json:"service,omitempty"`
	Port     string `json:"port,omitempty"`
	Pod      string `json:"pod,omitempty"`
	Node     string `json:"node,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
}

// Record is one explained input line, the JSON contract of `knet explain`.
type Record struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Text    string `json:"text"`
	Kind    Kind   `json:"kind"`
	Meaning string `json:"meaning"`
	Refs    Refs   `json:"refs"`
}
