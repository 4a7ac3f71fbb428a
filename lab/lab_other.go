//go:build !linux

package lab

import (
	"context"
	"errors"
	"io"

	"github.com/knet-dev/knet/cluster"
)

// ErrNotSupported: the lab needs Linux network namespaces.
var ErrNotSupported = errors.New("lab: needs Linux (network namespaces); use --vm")

// Prefix is the name prefix of every namespace of cluster name's lab.
func Prefix(clusterName string) string { return "knet-" + clusterName + "-" }

// UpOptions configure UpDetached.
type UpOptions struct {
	ServeCommand []string
	Log          io.Writer
}

// RunOptions configure RunSession.
type RunOptions struct {
	Scale, Random int
	Seed          uint64
	Log           io.Writer
}

// Report is a lab run.
type Report struct{}

// WriteText is not supported here.
func (r *Report) WriteText(w io.Writer) error { return ErrNotSupported }

// Disagreements is always 0 here.
func (r *Report) Disagreements() int { return 0 }

// UpDetached returns ErrNotSupported.
func UpDetached(ctx context.Context, c *cluster.Cluster, o UpOptions) error { return ErrNotSupported }

// ServeForeground returns ErrNotSupported.
func ServeForeground(ctx context.Context, c *cluster.Cluster, w io.Writer) error {
	return ErrNotSupported
}

// RunSession returns ErrNotSupported.
func RunSession(ctx context.Context, c *cluster.Cluster, o RunOptions) (*Report, error) {
	return nil, ErrNotSupported
}

// DownSession returns ErrNotSupported.
func DownSession(c *cluster.Cluster) error { return ErrNotSupported }

// Missing reports that nothing can run natively here.
func Missing(c *cluster.Cluster) []error { return []error{ErrNotSupported} }
