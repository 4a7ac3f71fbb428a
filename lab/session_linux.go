//go:build linux

package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/knet-dev/knet/cluster"
)

// UpOptions configure UpDetached.
type UpOptions struct {
	// ServeCommand is the command line that re-executes this program as
	// `knet lab serve (--preset NAME | -f FILE)`; argv[0] is the executable.
	ServeCommand []string
	Log          io.Writer
}

// UpDetached builds the lab and starts its servers as a background process living in the
// lab's fabric namespace (so Cleanup finds and ends it), returning once they listen.
//
// Equivalent to: `knet lab up`.
func UpDetached(ctx context.Context, c *cluster.Cluster, o UpOptions) (err error) {
	l, err := Up(ctx, c, o.Log)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Down())
		} else {
			l.Close()
		}
	}()
	if len(o.ServeCommand) == 0 {
		return errors.New("lab up: no serve command")
	}
	cmd := exec.Command(o.ServeCommand[0], o.ServeCommand[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = nil
	if err := l.nsByKey["fabric"].Start(cmd); err != nil {
		return fmt.Errorf("lab up: start servers: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if !strings.HasPrefix(s, "ready") {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("lab up: servers did not start: %q", strings.TrimSpace(s))
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return errors.New("lab up: servers did not start within 30s")
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		return ctx.Err()
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	logf(o.Log, "lab %s: up (servers pid %d); `knet lab run` sends flows, `knet lab down` removes it", c.Name, pid)
	return nil
}

// ServeForeground opens the lab made by `knet lab up`, serves until ctx ends, and writes
// "ready" to w once every socket listens.
//
// Equivalent to: `knet lab serve`.
func ServeForeground(ctx context.Context, c *cluster.Cluster, w io.Writer) error {
	l, err := Open(c)
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		return err
	}
	defer l.Close()
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- l.Serve(ctx, ready) }()
	select {
	case <-ready:
		fmt.Fprintln(w, "ready")
		if f, ok := w.(*os.File); ok {
			f.Sync()
		}
	case err := <-errc:
		fmt.Fprintf(w, "error: %v\n", err)
		return err
	}
	return <-errc
}

// RunOptions configure RunSession.
type RunOptions struct {
	// Scale multiplies the connection counts (default 1); Random is the number of random
	// flows, Seed their seed.
	Scale, Random int
	Seed          uint64
	Log           io.Writer
}

// RunSession sends the seed's flows plus random ones. When the lab is up (from `knet lab
// up`) it uses it; otherwise it brings the lab up with in-process servers for the run and
// takes it down afterwards (also on error or cancellation).
//
// Equivalent to: `knet lab run`.
func RunSession(ctx context.Context, c *cluster.Cluster, o RunOptions) (*Report, error) {
	flows := SeedFlows(c, o.Scale, o.Random, o.Seed)
	if names, _ := IsUp(c); len(names) > 0 {
		l, err := Open(c)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		return l.RunFlows(ctx, flows), nil
	}
	start := time.Now()
	l, err := Up(ctx, c, o.Log)
	if err != nil {
		return nil, err
	}
	up := time.Since(start)
	defer l.Down()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- l.Serve(sctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		return nil, err
	}
	r := l.RunFlows(ctx, flows)
	logf(o.Log, "lab %s: up in %s, flows in %s", c.Name, up.Round(time.Millisecond), r.Duration.Round(time.Millisecond))
	return r, nil
}

// IsUp lists the lab's namespaces (none when it is down).
func IsUp(c *cluster.Cluster) ([]string, error) {
	return kernelListNamed(Prefix(c.Name))
}

// DownSession removes the lab of cluster c, whatever state it is in.
//
// Equivalent to: `knet lab down`.
func DownSession(c *cluster.Cluster) error { return Cleanup(Prefix(c.Name)) }
