package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/nodecmd"
	"github.com/knet-dev/knet/render"
)

func newExecCmd(s Streams) *cobra.Command {
	var cf clusterFlags
	var now string
	cmd := &cobra.Command{
		Use:   "exec (--preset NAME | -f CLUSTER.yaml) NODE[/POD] -- COMMAND [ARGS]",
		Short: "run an emulated command on an emulated node",
		Long: `exec renders one node of a cluster (CNI, kube-proxy, container runtime) and runs an
emulated command on it, printing what the real tool prints. NODE/POD (or NODE/NAMESPACE/POD)
runs it in a pod's network namespace. Supported commands:
  ` + strings.Join(nodecmd.Supported(), "\n  "),
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash != 1 || len(args) < 2 {
				return fmt.Errorf("usage: knet exec (--preset NAME | -f CLUSTER.yaml) NODE[/POD] -- COMMAND [ARGS]")
			}
			c, err := cf.load()
			if err != nil {
				return err
			}
			at := time.Now()
			if now != "" {
				if at, err = time.Parse(time.RFC3339, now); err != nil {
					return fmt.Errorf("--now: %w", err)
				}
			}
			nodeName, pod, _ := strings.Cut(args[0], "/")
			node, err := render.Node(c, nodeName)
			if err != nil {
				return err
			}
			ns, err := nodecmd.Namespace(node, pod)
			if err != nil {
				return err
			}
			return nodecmd.RunEnv(cmd.Context(), ns, args[1:], s.Out, nodecmd.Env{Now: at})
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&now, "now", "", "the node's clock (RFC 3339) for crictl CREATED and iptables-save headers")
	return cmd
}
