package cli

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/snapshot"
	"github.com/knet-dev/knet/snapshot/collect"
)

// collectOptions are `knet collect`'s switches.
type collectOptions struct {
	clusterFlags
	dir  string
	node string
}

func newCollectCmd(s Streams) *cobra.Command {
	o := &collectOptions{}
	cmd := &cobra.Command{
		Use:   "collect [-o DIR] [--node NAME] | collect (--preset NAME | -f CLUSTER.yaml) NODE -o DIR",
		Short: "collect a read-only snapshot of this node (or write an emulated node's)",
		Long: `collect writes a snapshot folder (ip, iptables-save, ipset, ipvsadm, nft, crictl dumps, the
forwarding sysctls and meta.json) of the current network namespace; it changes nothing
(Linux only, root for netfilter and IPVS). With --preset or -f and a NODE it writes instead
the emulated node's snapshot, as rendered from the cluster, for knet verify and knet trace.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.dir == "" {
				return errors.New("collect: -o DIR is required")
			}
			if o.preset != "" || o.file != "" {
				if len(args) != 1 {
					return errors.New("collect: with --preset or -f, name the NODE to write")
				}
				c, err := o.clusterFlags.load()
				if err != nil {
					return fmt.Errorf("collect: %w", err)
				}
				n, err := render.Node(c, args[0])
				if err != nil {
					return fmt.Errorf("collect: %w", err)
				}
				meta := snapshot.Meta{Node: args[0], Emulated: true, Time: time.Unix(0, 0).UTC(),
					Tools: map[string]string{"knet": c.Name + " kube-proxy " + string(c.Proxy.Mode) + " " + c.Proxy.Version}}
				if err := snapshot.Write(o.dir, n, meta); err != nil {
					return fmt.Errorf("collect: %w", err)
				}
				fmt.Fprintf(s.Out, "wrote emulated node %s of %s to %s\n", args[0], c.Name, o.dir)
				return nil
			}
			if len(args) > 0 {
				return fmt.Errorf("collect: %q: a NODE argument needs --preset or -f (a real node is collected from where knet runs)", args[0])
			}
			if runtime.GOOS != "linux" {
				return fmt.Errorf("collect: collecting a real node needs Linux (this is %s); use --preset NAME NODE for an emulated one", runtime.GOOS)
			}
			meta, err := collect.Collect(cmd.Context(), o.dir, collect.Options{Node: o.node})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "collected node %s (kernel %s) to %s\n", meta.Node, meta.Kernel, o.dir)
			for _, u := range meta.Unreadable {
				fmt.Fprintf(s.Err, "not collected: %s\n", u)
			}
			return nil
		},
	}
	o.clusterFlags.add(cmd)
	cmd.Flags().StringVarP(&o.dir, "output", "o", "", "snapshot folder to write")
	cmd.Flags().StringVar(&o.node, "node", "", "node name for a real collection (default: the hostname)")
	return cmd
}
