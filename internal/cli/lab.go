package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/lab"
	"github.com/knet-dev/knet/lab/vm"
)

// labFlags are the switches of `knet lab`.
type labFlags struct {
	cluster clusterFlags
	vm      bool
	noVM    bool
	output  string
	scale   int
	random  int
	seed    uint64
}

func newLabCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab up|run|down (--preset NAME | -f CLUSTER.yaml) [--vm]",
		Short: "run a cluster on a real Linux kernel in network namespaces",
		Long: `knet lab builds the cluster on a real Linux kernel: every node and pod a network
namespace named knet-<cluster>-..., the nodes on per-subnet bridges with a router between the
subnets, the CNI's devices, routes and tunnels and kube-proxy's rules as knet renders them, and
a small TCP/UDP/HTTP/DNS server in every pod that answers with its name and the source address
it saw. "run" sends the seed's flows (pod → ClusterIP, pod → pod across subnets, node →
Service, outside → NodePort, DNS over UDP) plus random ones and prints, per flow, which pod
answered, the source it saw and the interfaces crossed, next to what the model predicts.

When the host kernel lacks what the cluster needs (ipip, dummy, IPVS) or knet is not root,
"run" boots a Debian kernel under qemu and runs there (--vm forces it).`,
	}
	var f labFlags
	up := &cobra.Command{
		Use:   "up (--preset NAME | -f CLUSTER.yaml)",
		Short: "build the lab and start its servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.cluster.load()
			if err != nil {
				return err
			}
			if f.vm {
				return errors.New("lab up --vm: the VM is one-shot; use `knet lab run --vm`")
			}
			if err := nativeOK(c); err != nil {
				return fmt.Errorf("%w; `knet lab run` runs it in a VM instead", err)
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			return lab.UpDetached(cmd.Context(), c, lab.UpOptions{ServeCommand: append([]string{exe, "lab", "serve"}, f.cluster.args()...), Log: s.Err})
		},
	}
	run := &cobra.Command{
		Use:   "run (--preset NAME | -f CLUSTER.yaml) [--vm] [-o text|json]",
		Short: "send the seed's flows through the lab and compare with the model",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.cluster.load()
			if err != nil {
				return err
			}
			if f.output != "text" && f.output != "json" {
				return fmt.Errorf("-o %s: want text or json", f.output)
			}
			useVM := f.vm
			if !useVM && !f.noVM {
				if err := nativeOK(c); err != nil {
					fmt.Fprintf(s.Err, "knet lab: %v; running in a VM (Debian kernel under qemu)\n", err)
					useVM = true
				}
			}
			if useVM {
				return runInVM(cmd, s, f)
			}
			r, err := lab.RunSession(cmd.Context(), c, lab.RunOptions{Scale: f.scale, Random: f.random, Seed: f.seed, Log: s.Err})
			if err != nil {
				return err
			}
			if f.output == "json" {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else if err := r.WriteText(s.Out); err != nil {
				return err
			}
			if r.Disagreements() > 0 {
				return &ExitError{Code: 3}
			}
			return nil
		},
	}
	down := &cobra.Command{
		Use:   "down (--preset NAME | -f CLUSTER.yaml)",
		Short: "remove the lab: its namespaces, links, mounts and processes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.cluster.load()
			if err != nil {
				return err
			}
			return lab.DownSession(c)
		},
	}
	serve := &cobra.Command{
		Use:    "serve (--preset NAME | -f CLUSTER.yaml)",
		Short:  "serve the lab's pods (started by `knet lab up`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.cluster.load()
			if err != nil {
				return err
			}
			return lab.ServeForeground(cmd.Context(), c, s.Out)
		},
	}
	for _, sub := range []*cobra.Command{up, run, down, serve} {
		f.cluster.add(sub)
		cmd.AddCommand(sub)
	}
	run.Flags().BoolVar(&f.vm, "vm", false, "run inside a Debian kernel under qemu even if the host could")
	up.Flags().BoolVar(&f.vm, "vm", false, "not supported: the VM is one-shot (use run --vm)")
	run.Flags().BoolVar(&f.noVM, "no-vm", false, "never fall back to the VM")
	run.Flags().StringVarP(&f.output, "output", "o", "text", "text or json")
	run.Flags().IntVar(&f.scale, "scale", 1, "multiply the connection counts")
	run.Flags().IntVar(&f.random, "random", 4, "number of random flows")
	run.Flags().Uint64Var(&f.seed, "seed", uint64(time.Now().UnixNano()), "seed of the random flows")
	return cmd
}

// args gives back the cluster flags for a re-executed knet.
func (f *clusterFlags) args() []string {
	if f.preset != "" {
		return []string{"--preset", f.preset}
	}
	abs, err := filepath.Abs(f.file)
	if err != nil {
		abs = f.file
	}
	return []string{"-f", abs}
}

// nativeOK says why the cluster cannot run on this host's kernel, nil when it can.
func nativeOK(c *cluster.Cluster) error {
	if os.Geteuid() != 0 {
		return errors.New("not root (network namespaces need CAP_SYS_ADMIN)")
	}
	if m := lab.Missing(c); len(m) > 0 {
		return fmt.Errorf("the host kernel lacks %w", errors.Join(m...))
	}
	return nil
}

// runInVM re-runs `knet lab run` inside the VM with the cluster file (and its folder's
// object files) copied in.
func runInVM(cmd *cobra.Command, s Streams, f labFlags) error {
	ctx := cmd.Context()
	o := vm.Options{Log: s.Err}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	knet, err := vm.StaticKnet(ctx, o, exe)
	if err != nil {
		return err
	}
	args := []string{"lab", "run", "--no-vm", "-o", f.output, "--scale", strconv.Itoa(f.scale),
		"--random", strconv.Itoa(f.random), "--seed", strconv.FormatUint(f.seed, 10)}
	if f.cluster.preset != "" {
		args = append(args, "--preset", f.cluster.preset)
	} else {
		dir := filepath.Dir(f.cluster.file)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		o.Files = map[string]string{}
		for _, e := range ents {
			if e.Type().IsRegular() {
				o.Files["/knet/cluster/"+e.Name()] = filepath.Join(dir, e.Name())
			}
		}
		args = append(args, "-f", "/knet/cluster/"+filepath.Base(f.cluster.file))
	}
	res, err := vm.RunKnet(ctx, o, knet, args, s.Out)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Err, "knet lab: VM boot %s, total %s\n", res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}
