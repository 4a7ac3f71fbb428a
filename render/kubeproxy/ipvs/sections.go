package ipvs

import (
	"bufio"
	"fmt"
	"io"

	fipset "github.com/knet-dev/knet/format/ipset"
	"github.com/knet-dev/knet/format/ipvsadm"
)

// SectionOptions choose the IPVS listing WriteSections prints.
type SectionOptions struct {
	// Save prints `ipvsadm-save -n` instead of `ipvsadm -Ln`.
	Save bool
}

// WriteSections writes the three parts of an IPVS-mode rendering, each under a `#` header:
// the iptables-restore input (with the chain jumps as the iptables commands kube-proxy
// runs), `ipset save` (sorted members) and `ipvsadm -Ln` (or `ipvsadm-save -n`), after the
// deprecation notice. This is what `knet render kube-proxy --mode ipvs` prints.
func WriteSections(w io.Writer, res *Result, opts SectionOptions) error {
	bw := bufio.NewWriter(w)
	for _, n := range res.Notes {
		fmt.Fprintf(bw, "# %s\n", n)
	}
	fmt.Fprint(bw, "# iptables-restore --noflush input written by kube-proxy (ipvs mode); jumps ensured first:\n")
	for _, j := range res.Jumps {
		fmt.Fprintf(bw, "# iptables -t %s -I %s 1 %s\n", j.Table, j.Chain, j.Rule)
	}
	bw.Write(res.Restore)
	fmt.Fprint(bw, "# ipset save -sorted\n")
	if err := fipset.WriteSave(bw, res.IPSets, fipset.Options{Sorted: true}); err != nil {
		return err
	}
	if opts.Save {
		fmt.Fprint(bw, "# ipvsadm-save -n\n")
		if err := ipvsadm.WriteSave(bw, res.IPVS); err != nil {
			return err
		}
	} else {
		fmt.Fprint(bw, "# ipvsadm -Ln\n")
		if err := ipvsadm.WriteList(bw, res.IPVS, ipvsadm.ListOptions{}); err != nil {
			return err
		}
	}
	return bw.Flush()
}
