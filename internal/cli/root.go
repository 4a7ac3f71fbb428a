// Package cli builds knet's command tree. Each verb lives in its own file and only parses
// flags, calls the library packages and writes their output; no networking logic lives here.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Streams are the standard streams a command reads and writes.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// ExitError carries a specific exit status out of a command (for example `knet verify`
// returns 1 when it found errors) without printing anything more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Main runs knet with args and returns the process exit status.
func Main(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	s := Streams{In: in, Out: out, Err: errOut}
	root := newRootCmd(s)
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return ee.Code
		}
		fmt.Fprintf(errOut, "knet: %v\n", err)
		return 1
	}
	return 0
}

func newRootCmd(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "knet",
		Short: "Kubernetes node networking: render, print, explain, trace, verify, compare",
		Long: `knet models a Kubernetes node's network stack (links, addresses, routes, netfilter,
IPVS, nftables) either rendered from Kubernetes objects, as kube-proxy and the CNI would
program it, or parsed from a real node's dumps, and reads that model to print the native
tool output, explain it, trace packets, verify a node and compare choices.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newTourCmd(s),
		newRenderCmd(s),
		newExecCmd(s),
		newGetCmd(s),
		newTraceCmd(s),
		newExplainCmd(s),
		newSimulateCmd(s),
		newLabCmd(s),
		newCollectCmd(s),
		newVerifyCmd(s),
		newCompareCmd(s),
		newDiffCmd(s),
		newImportCmd(s),
	)
	return root
}

// notYet is the body of a verb whose capability has not landed; it names the issue.
func notYet(what string, issue int) error {
	return fmt.Errorf("%s is not implemented yet (tracked in issue %d)", what, issue)
}
