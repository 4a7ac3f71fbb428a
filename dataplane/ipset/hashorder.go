package ipset

import (
	"math/bits"
	"net/netip"
	"sort"
)

// KernelOrder returns the members in the order the kernel lists them (`ipset list`,
// `ipset save` without -sorted): hash types walk their buckets in index order, each bucket in
// insertion order; the bucket is jhash2 of the element's in-kernel layout seeded with
// initval, masked to the table size (ip_set_hash_gen.h HKEY). bitmap:port walks its bits
// (ascending ports), list:set keeps insertion order.
//
// Checked against ipset 7.17 on Linux 6.18 for IPv4 hash:ip, hash:ip,port, hash:ip,port,ip,
// hash:ip,port,net (cidr stored minus one, nomatch not hashed) and hash:net; the IPv6
// layouts follow the same structs but were not checked. Table resizes (a bucket outgrowing
// bucketsize doubles hashsize in the kernel) are not modelled, nor are holes left by deletes.
func (s *Set) KernelOrder() []Member {
	out := append([]Member(nil), s.Members...)
	switch s.Type {
	case BitmapPort:
		sort.SliceStable(out, func(i, j int) bool { return out[i].Port < out[j].Port })
		return out
	case ListSet:
		return out
	}
	hbits := uint(bits.Len32(s.HashSize - 1))
	if 1<<hbits != s.HashSize {
		hbits = uint(bits.Len32(s.HashSize))
	}
	mask := uint32(1)<<hbits - 1
	keys := make([]uint32, len(out))
	for i, m := range out {
		keys[i] = jhash2(s.hashWords(m), s.InitVal) & mask
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
	sorted := make([]Member, len(out))
	for i, k := range idx {
		sorted[i] = out[k]
	}
	return sorted
}

var protoNums = map[string]byte{"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmpv6": 58}

// hashWords lays the element out as the kernel's struct hash_*4_elem / *6_elem and reads it
// as host-order (little-endian) u32 words, as jhash2 does.
func (s *Set) hashWords(m Member) []uint32 {
	var b []byte
	addr := func(a netip.Addr) {
		if s.Family == Inet6 {
			x := a.As16()
			b = append(b, x[:]...)
		} else {
			x := a.Unmap().As4()
			b = append(b, x[:]...)
		}
	}
	portProto := func(third byte) {
		b = append(b, byte(m.Port>>8), byte(m.Port))
		if s.Type == HashIPPortNet {
			b = append(b, third, protoNums[m.Proto])
		} else {
			b = append(b, protoNums[m.Proto], 0)
		}
	}
	switch s.Type {
	case HashIP:
		addr(m.IP)
	case HashIPPort:
		addr(m.IP)
		portProto(0)
	case HashIPPortIP:
		addr(m.IP)
		addr(m.IP2)
		portProto(0)
	case HashIPPortNet:
		addr(m.IP)
		addr(m.Net.Masked().Addr())
		portProto(byte(m.Net.Bits() - 1))
	case HashNet:
		addr(m.Net.Masked().Addr())
		b = append(b, 0, 0, 0, byte(m.Net.Bits()))
	}
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
	}
	return w
}

// jhash2 is the kernel's jhash2 (Bob Jenkins' lookup3 over u32 words, JHASH_INITVAL
// 0xdeadbeef).
func jhash2(k []uint32, initval uint32) uint32 {
	rol := bits.RotateLeft32
	a := uint32(0xdeadbeef) + uint32(len(k))<<2 + initval
	b, c := a, a
	for len(k) > 3 {
		a += k[0]
		b += k[1]
		c += k[2]
		a -= c
		a ^= rol(c, 4)
		c += b
		b -= a
		b ^= rol(a, 6)
		a += c
		c -= b
		c ^= rol(b, 8)
		b += a
		a -= c
		a ^= rol(c, 16)
		c += b
		b -= a
		b ^= rol(a, 19)
		a += c
		c -= b
		c ^= rol(b, 4)
		b += a
		k = k[3:]
	}
	switch len(k) {
	case 3:
		c += k[2]
		fallthrough
	case 2:
		b += k[1]
		fallthrough
	case 1:
		a += k[0]
		c ^= b
		c -= rol(b, 14)
		a ^= c
		a -= rol(c, 11)
		b ^= a
		b -= rol(a, 25)
		c ^= b
		c -= rol(b, 16)
		a ^= c
		a -= rol(c, 4)
		b ^= a
		b -= rol(a, 14)
		c ^= b
		c -= rol(b, 24)
	}
	return c
}
