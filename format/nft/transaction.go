package nft

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/nftables"
)

// WriteTransaction writes rs as the `nft -f` input that creates it from nothing, in the
// syntax knftables writes: each table, then its chains, sets and maps in model order, then
// rules chain by chain, then elements. Applying it to an empty namespace and listing gives
// rs back (object order and handles follow this text's order).
func WriteTransaction(w io.Writer, rs *nftables.Ruleset) error {
	bw := bufio.NewWriter(w)
	for _, t := range rs.Tables {
		pre := fmt.Sprintf("%s %s", t.Family, t.Name)
		fmt.Fprintf(bw, "add table %s", pre)
		if t.Comment != "" {
			fmt.Fprintf(bw, " { comment %s ; }", strconv.Quote(t.Comment))
		}
		bw.WriteString("\n")
		for _, c := range t.Chains {
			fmt.Fprintf(bw, "add chain %s %s", pre, c.Name)
			var props []string
			if c.IsBase() {
				p := fmt.Sprintf("type %s hook %s", c.Type, c.Hook)
				if c.Device != "" {
					p += " device " + strconv.Quote(c.Device)
				}
				p += fmt.Sprintf(" priority %d", c.Priority)
				props = append(props, p)
				if c.Policy != "" {
					props = append(props, "policy "+c.Policy)
				}
			}
			if c.Comment != "" {
				props = append(props, "comment "+strconv.Quote(c.Comment))
			}
			if len(props) > 0 {
				fmt.Fprintf(bw, " { %s ; }", strings.Join(props, " ; "))
			}
			bw.WriteString("\n")
		}
		for _, s := range t.Sets {
			kind := "set"
			typ := strings.Join(s.KeyType, " . ")
			if s.IsMap() {
				kind = "map"
				typ += " : " + s.DataType
			}
			props := []string{"type " + typ}
			if len(s.Flags) > 0 {
				props = append(props, "flags "+strings.Join(s.Flags, ","))
			}
			if s.Timeout != "" {
				props = append(props, "timeout "+s.Timeout)
			}
			if s.Size > 0 {
				props = append(props, fmt.Sprintf("size %d", s.Size))
			}
			if s.Policy != "" {
				props = append(props, "policy "+s.Policy)
			}
			if s.Comment != "" {
				props = append(props, "comment "+strconv.Quote(s.Comment))
			}
			fmt.Fprintf(bw, "add %s %s %s { %s ; }\n", kind, pre, s.Name, strings.Join(props, " ; "))
		}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				fmt.Fprintf(bw, "add rule %s %s %s", pre, c.Name, r.Text)
				if r.Comment != "" {
					bw.WriteString(" comment " + strconv.Quote(r.Comment))
				}
				bw.WriteString("\n")
			}
		}
		for _, s := range t.Sets {
			for _, e := range s.Elements {
				if e == nil {
					continue
				}
				fmt.Fprintf(bw, "add element %s %s { %s }\n", pre, s.Name, elementString(e))
			}
		}
	}
	return bw.Flush()
}
