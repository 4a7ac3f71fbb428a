// Package ipset models Linux ipsets as the kernel's ip_set modules of Linux 6.x keep them
// and as ipset v7.17 names them: the set types kube-proxy and CNIs use (hash:ip,
// hash:ip,port, hash:ip,port,ip, hash:ip,port,net, hash:net, bitmap:port, list:set), their
// create options (family, hashsize, maxelem, range, size, timeout, counters, comment,
// skbinfo, bucketsize, initval), members with their extensions, and the match semantics
// of `-m set --match-set NAME dir[,dir...]` (Test).
//
// The package is portable: nothing here touches the operating system.
package ipset

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// ErrExist says an element is already in the set (ipset's "Element cannot be added to
// the set: it's already added").
var ErrExist = errors.New("element is already added")

// Type is a set type, spelled as ipset prints it.
type Type string

// Set types.
const (
	HashIP         Type = "hash:ip"
	HashIPPort     Type = "hash:ip,port"
	HashIPPortIP   Type = "hash:ip,port,ip"
	HashIPPortNet  Type = "hash:ip,port,net"
	HashNet        Type = "hash:net"
	BitmapPort     Type = "bitmap:port"
	ListSet        Type = "list:set"
	defaultMaxElem      = 65536
)

// Types lists the supported set types.
func Types() []Type {
	return []Type{HashIP, HashIPPort, HashIPPortIP, HashIPPortNet, HashNet, BitmapPort, ListSet}
}

// Revision returns the newest revision of the type in Linux 6.x (what `ipset list` prints
// as Revision on such a kernel; seen on 6.18 with ipset 7.17).
func (t Type) Revision() int {
	switch t {
	case HashIP:
		return 6
	case HashIPPort:
		return 7
	case HashIPPortIP:
		return 6
	case HashIPPortNet:
		return 8
	case HashNet:
		return 7
	case BitmapPort, ListSet:
		return 3
	}
	return 0
}

// Dims is how many dimensions a match on the type takes (the dir flags count).
func (t Type) Dims() int {
	switch t {
	case HashIPPort:
		return 2
	case HashIPPortIP, HashIPPortNet:
		return 3
	}
	return 1
}

func (t Type) hash() bool { return strings.HasPrefix(string(t), "hash:") }

// ParseType checks a set type name.
func ParseType(s string) (Type, error) {
	for _, t := range Types() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unsupported ipset type %q", s)
}

// Family is a hash set's address family, spelled as ipset prints it.
type Family string

// Families.
const (
	Inet  Family = "inet"
	Inet6 Family = "inet6"
)

// Dir is one dimension of a set match: which packet field it takes.
type Dir string

// Match directions (`--match-set NAME src,dst`).
const (
	Src Dir = "src"
	Dst Dir = "dst"
)

// ParseDirs parses "dst,dst,src".
func ParseDirs(s string) ([]Dir, error) {
	var out []Dir
	for _, f := range strings.Split(s, ",") {
		switch Dir(f) {
		case Src, Dst:
			out = append(out, Dir(f))
		default:
			return nil, fmt.Errorf("bad set match direction %q (want src or dst)", f)
		}
	}
	return out, nil
}

// Member is one element of a set with its extensions. Which fields are used depends on
// the set type: IP (hash:ip*, and the net of hash:net as Net), Proto and Port (the
// ",proto:port" part), IP2 (hash:ip,port,ip), Net (hash:net, hash:ip,port,net's third
// part), Port alone (bitmap:port), SetName (list:set).
type Member struct {
	IP      netip.Addr
	Proto   string
	Port    uint16
	IP2     netip.Addr
	Net     netip.Prefix
	SetName string

	// Extensions; Timeout < 0 means none (0 means "never expires" in a timeout set).
	Timeout int64
	// HasCounters says Packets and Bytes are present.
	HasCounters     bool
	Packets, Bytes  uint64
	Comment         string
	SkbMark, SkbMsk uint32
	HasSkbMark      bool
	NoMatch         bool
}

// NewMember returns a member with no extensions.
func NewMember() Member { return Member{Timeout: -1} }

// Set is one ipset.
type Set struct {
	Name   string
	Type   Type
	Family Family

	// Hash types.
	HashSize, MaxElem, BucketSize uint32
	// InitVal is the hash seed; the kernel picks it at random when not given.
	InitVal uint32
	// bitmap:port range.
	RangeFrom, RangeTo uint16
	// list:set size.
	Size uint32

	// Timeout is the default timeout (HasTimeout); Counters, Comment and SkbInfo enable
	// the extensions.
	HasTimeout bool
	Timeout    uint32
	Counters   bool
	Comment    bool
	SkbInfo    bool

	// Revision is the type revision (defaults to Type.Revision()).
	Revision int
	// References counts the iptables rules that use the set; the kernel's reference count
	// that `ipset list` prints adds one per list:set holding the set (see Refs).
	References int
	// MemSize, when non-zero, is the "Size in memory" a real kernel reported; otherwise
	// MemoryEstimate is printed.
	MemSize int
	// Entries is the member count a terse listing (`ipset list -t`) reported, when the
	// members themselves are not known.
	Entries int

	Members []Member
	index   map[string]int
}

// Key returns the canonical element text of a member for this set (as ipset prints it).
func (s *Set) Key(m Member) string {
	b := make([]byte, 0, 48)
	ipPort := func() {
		b = m.IP.AppendTo(b)
		b = append(b, ',')
		b = append(b, m.Proto...)
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(m.Port), 10)
	}
	switch s.Type {
	case HashIP:
		b = m.IP.AppendTo(b)
	case HashIPPort:
		ipPort()
	case HashIPPortIP:
		ipPort()
		b = append(b, ',')
		b = m.IP2.AppendTo(b)
	case HashIPPortNet:
		ipPort()
		b = append(b, ',')
		b = appendNet(b, m.Net)
	case HashNet:
		b = appendNet(b, m.Net)
	case BitmapPort:
		b = strconv.AppendUint(b, uint64(m.Port), 10)
	case ListSet:
		return m.SetName
	}
	return string(b)
}

func appendNet(b []byte, p netip.Prefix) []byte {
	b = p.Addr().AppendTo(b)
	if p.Bits() != p.Addr().BitLen() {
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(p.Bits()), 10)
	}
	return b
}

// netString prints a net as ipset does: without the prefix length for a host net.
func netString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// Sets is every ipset of one namespace (what `ipset save` prints).
type Sets struct {
	// Sets in creation order.
	Sets  []*Set
	index map[string]*Set
}

// New returns an empty Sets.
func New() *Sets { return &Sets{index: map[string]*Set{}} }

func (ss *Sets) ensure() {
	if ss.index == nil {
		ss.index = map[string]*Set{}
		for _, s := range ss.Sets {
			ss.index[s.Name] = s
		}
	}
}

// Get returns the named set or nil.
func (ss *Sets) Get(name string) *Set {
	if ss == nil {
		return nil
	}
	ss.ensure()
	return ss.index[name]
}

// Create adds a set, filling in the kernel's defaults (family inet, hashsize 1024,
// maxelem 65536, bucketsize 12 for hash types; size 8 for list:set).
// Equivalent to: `ipset create NAME TYPE [family F] [hashsize N] [maxelem N] ...`.
func (ss *Sets) Create(s *Set) error {
	ss.ensure()
	if s.Name == "" || len(s.Name) > 31 || strings.ContainsAny(s.Name, " \t\n\r\"\x00") {
		return fmt.Errorf("ipset %q: name must be 1 to 31 characters without blanks or quotes", s.Name)
	}
	if _, err := ParseType(string(s.Type)); err != nil {
		return fmt.Errorf("ipset %s: %w", s.Name, err)
	}
	if _, dup := ss.index[s.Name]; dup {
		return fmt.Errorf("ipset %s: set with the same name already exists", s.Name)
	}
	if s.Type.hash() {
		if s.Family == "" {
			s.Family = Inet
		}
		if s.Family != Inet && s.Family != Inet6 {
			return fmt.Errorf("ipset %s: bad family %q", s.Name, s.Family)
		}
		if s.HashSize == 0 {
			s.HashSize = 1024
		}
		if s.MaxElem == 0 {
			s.MaxElem = defaultMaxElem
		}
		if s.BucketSize == 0 {
			s.BucketSize = 12
		}
	}
	if s.Type == BitmapPort && s.RangeFrom > s.RangeTo {
		return fmt.Errorf("ipset %s: bad range %d-%d", s.Name, s.RangeFrom, s.RangeTo)
	}
	if s.Type == ListSet && s.Size == 0 {
		s.Size = 8
	}
	if s.Revision == 0 {
		s.Revision = s.Type.Revision()
	}
	s.index = map[string]int{}
	members := s.Members
	s.Members = nil
	for _, m := range members {
		if err := ss.add(s, m); err != nil {
			return err
		}
	}
	ss.Sets = append(ss.Sets, s)
	ss.index[s.Name] = s
	return nil
}

// Add adds a member to the named set.
// Equivalent to: `ipset add NAME ELEM [timeout N] [comment "..."]`.
func (ss *Sets) Add(name string, m Member) error {
	s := ss.Get(name)
	if s == nil {
		return fmt.Errorf("ipset %s: the set with the given name does not exist", name)
	}
	return ss.add(s, m)
}

func (ss *Sets) add(s *Set, m Member) error {
	if err := s.check(&m, ss); err != nil {
		return fmt.Errorf("ipset %s: %w", s.Name, err)
	}
	k := s.Key(m)
	if _, dup := s.index[k]; dup {
		return fmt.Errorf("ipset %s: element %s: %w", s.Name, k, ErrExist)
	}
	if s.Type == ListSet && uint32(len(s.Members)) >= s.Size {
		return fmt.Errorf("ipset %s: list set is full", s.Name)
	}
	if s.MaxElem != 0 && uint32(len(s.Members)) >= s.MaxElem {
		return fmt.Errorf("ipset %s: hash is full, cannot add more elements", s.Name)
	}
	if m.Timeout < 0 && s.HasTimeout {
		m.Timeout = int64(s.Timeout)
	}
	if s.Counters {
		m.HasCounters = true
	}
	s.index[k] = len(s.Members)
	s.Members = append(s.Members, m)
	return nil
}

func (s *Set) family(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("missing address")
	}
	if (s.Family == Inet6) != (a.Is6() && !a.Is4In6()) {
		return fmt.Errorf("address %s does not match family %s", a, s.Family)
	}
	return nil
}

func (s *Set) check(m *Member, ss *Sets) error {
	needPort := func() error {
		switch m.Proto {
		case "tcp", "udp", "sctp", "udplite":
			return nil
		}
		return fmt.Errorf("unsupported protocol %q (want tcp, udp, sctp or udplite)", m.Proto)
	}
	switch s.Type {
	case HashIP:
		return s.family(m.IP)
	case HashIPPort:
		if err := s.family(m.IP); err != nil {
			return err
		}
		return needPort()
	case HashIPPortIP:
		if err := s.family(m.IP); err != nil {
			return err
		}
		if err := s.family(m.IP2); err != nil {
			return err
		}
		return needPort()
	case HashIPPortNet:
		if err := s.family(m.IP); err != nil {
			return err
		}
		if !m.Net.IsValid() {
			return fmt.Errorf("missing net")
		}
		m.Net = m.Net.Masked()
		if err := s.family(m.Net.Addr()); err != nil {
			return err
		}
		return needPort()
	case HashNet:
		if !m.Net.IsValid() {
			return fmt.Errorf("missing net")
		}
		m.Net = m.Net.Masked()
		return s.family(m.Net.Addr())
	case BitmapPort:
		if m.Port < s.RangeFrom || m.Port > s.RangeTo {
			return fmt.Errorf("port %d is outside the range %d-%d", m.Port, s.RangeFrom, s.RangeTo)
		}
	case ListSet:
		if ss != nil && ss.Get(m.SetName) == nil {
			return fmt.Errorf("set %s to add does not exist", m.SetName)
		}
	}
	return nil
}

// Packet is what a set match looks at.
type Packet struct {
	Src, Dst         netip.Addr
	Proto            string // "tcp", "udp", "sctp", "udplite", "icmp", ...
	SrcPort, DstPort uint16
}

// Test reports whether the packet matches the set with the given directions, as
// `-m set --match-set NAME dirs` does (ip_set_test): hash:net and hash:ip,port,net use the
// most specific matching net and honour nomatch; list:set tests its members in order.
func (ss *Sets) Test(name string, dirs []Dir, p Packet) (bool, error) {
	s := ss.Get(name)
	if s == nil {
		return false, fmt.Errorf("ipset %s: the set with the given name does not exist", name)
	}
	return ss.test(s, dirs, p, 0)
}

func (ss *Sets) test(s *Set, dirs []Dir, p Packet, depth int) (bool, error) {
	if s.Type == ListSet {
		if depth > 0 {
			return false, nil // list:set cannot contain list:set
		}
		for _, m := range s.Members {
			sub := ss.Get(m.SetName)
			if sub == nil {
				continue
			}
			ok, err := ss.test(sub, dirs, p, depth+1)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
	if len(dirs) < s.Type.Dims() {
		return false, fmt.Errorf("ipset %s: %s needs %d directions, got %d", s.Name, s.Type, s.Type.Dims(), len(dirs))
	}
	addr := func(d Dir) netip.Addr {
		if d == Src {
			return p.Src
		}
		return p.Dst
	}
	port := func(d Dir) (uint16, bool) {
		switch p.Proto {
		case "tcp", "udp", "sctp", "udplite":
		default:
			return 0, false
		}
		if d == Src {
			return p.SrcPort, true
		}
		return p.DstPort, true
	}
	inFamily := func(a netip.Addr) bool {
		return a.IsValid() && (s.Family == Inet6) == (a.Is6() && !a.Is4In6())
	}
	switch s.Type {
	case HashIP:
		a := addr(dirs[0])
		if !inFamily(a) {
			return false, nil
		}
		_, ok := s.index[a.String()]
		return ok, nil
	case HashIPPort, HashIPPortIP:
		a := addr(dirs[0])
		pt, ok := port(dirs[1])
		if !ok || !inFamily(a) {
			return false, nil
		}
		m := Member{IP: a, Proto: p.Proto, Port: pt}
		if s.Type == HashIPPortIP {
			m.IP2 = addr(dirs[2])
			if !inFamily(m.IP2) {
				return false, nil
			}
		}
		_, found := s.index[s.Key(m)]
		return found, nil
	case HashNet, HashIPPortNet:
		var a netip.Addr
		var prefix string
		if s.Type == HashNet {
			a = addr(dirs[0])
		} else {
			ip := addr(dirs[0])
			pt, ok := port(dirs[1])
			if !ok || !inFamily(ip) {
				return false, nil
			}
			prefix = fmt.Sprintf("%s,%s:%d,", ip, p.Proto, pt)
			a = addr(dirs[2])
		}
		if !inFamily(a) {
			return false, nil
		}
		for bits := a.BitLen(); bits >= 0; bits-- {
			n, _ := a.Prefix(bits)
			if i, ok := s.index[prefix+netString(n)]; ok {
				return !s.Members[i].NoMatch, nil
			}
		}
		return false, nil
	case BitmapPort:
		pt, ok := port(dirs[0])
		if !ok {
			return false, nil
		}
		_, found := s.index[fmt.Sprint(pt)]
		return found, nil
	}
	return false, nil
}

// MemoryEstimate is the "Size in memory" a Linux 6.x kernel reports for the set when no
// two members share a hash bucket (measured on 6.18 for family inet: a base per type plus
// a per-member bucket allocation, plus each comment's allocation). Members that collide in
// a bucket make the real figure smaller; the kernel's bucket choice depends on initval.
func (s *Set) MemoryEstimate() int {
	if s.MemSize != 0 {
		return s.MemSize
	}
	n := len(s.Members)
	comments := 0
	for _, m := range s.Members {
		if s.Comment && m.Comment != "" {
			comments += 16 + len(m.Comment) + 1
		}
	}
	type cost struct{ base, per, perComment int }
	var c cost
	switch s.Type {
	case HashIP:
		c = cost{216, 40, 64}
		if s.Family == Inet6 {
			c = cost{224, 64, 88}
		}
	case HashIPPort:
		c = cost{216, 48, 64}
	case HashIPPortIP:
		c = cost{208, 56, 80}
	case HashIPPortNet:
		c = cost{464, 56, 80}
	case HashNet:
		c = cost{456, 48, 64}
	case BitmapPort:
		bits := int(s.RangeTo) - int(s.RangeFrom) + 1
		base := 72 + (bits+63)/64*8
		if s.Comment {
			base += bits * 8
		}
		return base + comments
	case ListSet:
		return 80 + n*48 + comments
	}
	per := c.per
	if s.Comment {
		per = c.perComment
	}
	return c.base + n*per + comments
}

// SortedMembers returns the members in the order `ipset save -sorted` prints them
// (seen with ipset 7.17: address, then net, then protocol number, then port).
func (s *Set) SortedMembers() []Member {
	out := append([]Member(nil), s.Members...)
	protoNum := map[string]int{"icmp": 1, "tcp": 6, "udp": 17, "udplite": 136, "sctp": 132}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := a.IP.Compare(b.IP); c != 0 {
			return c < 0
		}
		if a.Net.Addr() != b.Net.Addr() {
			return a.Net.Addr().Less(b.Net.Addr())
		}
		if a.Net.Bits() != b.Net.Bits() {
			return a.Net.Bits() < b.Net.Bits()
		}
		if a.Proto != b.Proto {
			return protoNum[a.Proto] < protoNum[b.Proto]
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if c := a.IP2.Compare(b.IP2); c != 0 {
			return c < 0
		}
		return a.SetName < b.SetName
	})
	return out
}

// Refs returns the kernel reference count `ipset list` prints: References plus one per
// list:set that holds the set.
func (ss *Sets) Refs(s *Set) int {
	n := s.References
	for _, l := range ss.Sets {
		if l.Type != ListSet {
			continue
		}
		for _, m := range l.Members {
			if m.SetName == s.Name {
				n++
			}
		}
	}
	return n
}

// Count returns the number of entries: the members, or Entries when only a count is known.
func (s *Set) Count() int {
	if len(s.Members) == 0 {
		return s.Entries
	}
	return len(s.Members)
}

// Has reports whether the set holds an element equal to m (extensions aside).
func (s *Set) Has(m Member) bool {
	_, ok := s.index[s.Key(m)]
	return ok
}
