package iproute

import (
	"bufio"
	"fmt"
	"io"

	"github.com/knet-dev/knet/dataplane/route"
)

// PrintBrief prints `ip -br [-4|-6] addr` (links set to false) or `ip -br link` (links set
// to true), iproute2 6.1.0: "%-16s %-14s " NAME[@PEER] and state, then every address
// "ADDR/LEN " (secondaries included) or "MAC <FLAGS> ".
func PrintBrief(w io.Writer, s *route.Stack, o Options, links bool) error {
	bw := bufio.NewWriter(w)
	found := false
	for _, l := range s.Links {
		if o.Dev != "" && l.Name != o.Dev {
			continue
		}
		found = true
		head := fmt.Sprintf("%-16s %-14s ", LinkName(l), l.OperState)
		if links {
			addr := l.HardwareAddr.String()
			if l.LinkType == "ipip" {
				addr = "0.0.0.0"
				if l.IPIP != nil && l.IPIP.Local.IsValid() {
					addr = l.IPIP.Local.String()
				}
			}
			fmt.Fprintf(bw, "%s%s <%s> \n", head, addr, briefFlags(s, l))
			continue
		}
		var v4, v6 []string
		for _, a := range s.Addrs {
			if a.Dev != l.Name {
				continue
			}
			if a.Prefix.Addr().Is4() {
				v4 = append(v4, a.Prefix.String())
			} else {
				v6 = append(v6, a.Prefix.String())
			}
		}
		var addrs []string
		if o.Family != Family6 {
			addrs = append(addrs, v4...)
		}
		if o.Family != Family4 {
			addrs = append(addrs, v6...)
		}
		if o.Family != FamilyAll && len(addrs) == 0 {
			continue
		}
		bw.WriteString(head)
		for _, a := range addrs {
			bw.WriteString(a + " ")
		}
		bw.WriteString("\n")
	}
	if o.Dev != "" && !found {
		return fmt.Errorf("device %q does not exist", o.Dev)
	}
	return bw.Flush()
}

func briefFlags(s *route.Stack, l *route.Link) string {
	h := linkHeader(s, l, false)
	i, j := 0, 0
	for k := range h {
		if h[k] == '<' && i == 0 {
			i = k + 1
		}
		if h[k] == '>' {
			j = k
			break
		}
	}
	return h[i:j]
}
