// Command knet makes Kubernetes node networking visible, checkable and comparable.
//
// All logic lives in internal/cli and the library packages; this file only wires the
// process to the command tree.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/knet-dev/knet/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
