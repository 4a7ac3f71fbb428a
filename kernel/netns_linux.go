//go:build linux

package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind-mounted, as `ip netns` does.
const NetnsDir = "/run/netns"

// NS is a network namespace: a named one bind-mounted under /run/netns (visible to
// `ip netns`), or an anonymous one kept alive only by its open file descriptor.
type NS struct {
	name string
	fd   netns.NsHandle
}

// NewNS creates a network namespace. A non-empty name makes it a named namespace under
// /run/netns; an empty name makes an anonymous one that lives until Close.
// The calling goroutine's namespace is not changed.
//
// Equivalent to: `ip netns add NAME`.
func NewNS(name string) (*NS, error) {
	if strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("invalid namespace name %q", name)
	}
	var ns *NS
	err := onLockedThread(func() error {
		var err error
		ns, err = unshareNS(name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ns, nil
}

// unshareNS runs on a locked thread: it moves the thread into a new namespace, pins it and
// moves the thread back. When moving back fails it returns errThreadTainted so the caller
// leaves the thread locked (the runtime then discards it).
func unshareNS(name string) (_ *NS, err error) {
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open current namespace: %w", err)
	}
	defer orig.Close()

	var target string
	if name != "" {
		if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", NetnsDir, err)
		}
		target = filepath.Join(NetnsDir, name)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return nil, fmt.Errorf("create namespace %q: %w", name, err)
		}
		f.Close()
		defer func() {
			if err != nil {
				os.Remove(target)
			}
		}()
	}

	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("unshare network namespace: %w", err)
	}
	// From here on the thread is in the new namespace: always try to go back.
	fd, getErr := netns.Get()
	var mountErr error
	if getErr == nil && target != "" {
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if mountErr = unix.Mount(self, target, "none", unix.MS_BIND, ""); mountErr != nil {
			mountErr = fmt.Errorf("bind mount namespace %q: %w", name, mountErr)
		}
	}
	if err := netns.Set(orig); err != nil {
		if fd.IsOpen() {
			fd.Close()
		}
		return nil, fmt.Errorf("%w: %w", errThreadTainted, err)
	}
	if getErr != nil {
		return nil, fmt.Errorf("open new namespace: %w", getErr)
	}
	if mountErr != nil {
		fd.Close()
		return nil, mountErr
	}
	return &NS{name: name, fd: fd}, nil
}

// GetNS opens the named namespace NAME under /run/netns.
func GetNS(name string) (*NS, error) {
	fd, err := netns.GetFromPath(filepath.Join(NetnsDir, name))
	if err != nil {
		return nil, fmt.Errorf("open namespace %q: %w", name, err)
	}
	return &NS{name: name, fd: fd}, nil
}

// Name is the namespace's name under /run/netns, "" for an anonymous one.
func (ns *NS) Name() string { return ns.name }

// Path is a path that refers to the namespace (for nsenter or `ip netns exec`).
func (ns *NS) Path() string {
	if ns.name != "" {
		return filepath.Join(NetnsDir, ns.name)
	}
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns.fd))
}

// Handle is the namespace's file descriptor (for netlink.NewHandleAt, ipvs.NewInNamespace).
func (ns *NS) Handle() netns.NsHandle { return ns.fd }

func (ns *NS) String() string {
	if ns.name != "" {
		return ns.name
	}
	return fmt.Sprintf("netns(fd %d)", int(ns.fd))
}

// Close releases the file descriptor. An anonymous namespace disappears when nothing else
// (no process, socket or mount) holds it; a named one stays until Delete.
func (ns *NS) Close() error {
	if !ns.fd.IsOpen() {
		return nil
	}
	err := ns.fd.Close()
	ns.fd = netns.None()
	return err
}

// Delete closes the namespace and, for a named one, removes its bind mount.
//
// Equivalent to: `ip netns delete NAME`.
func (ns *NS) Delete() error {
	err := ns.Close()
	if ns.name != "" {
		err = errors.Join(err, DeleteNamedNS(ns.name))
	}
	return err
}

// DeleteNamedNS unmounts and removes /run/netns/NAME. A missing namespace is not an error.
//
// Equivalent to: `ip netns delete NAME`.
func DeleteNamedNS(name string) error {
	p := filepath.Join(NetnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace %q: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove namespace %q: %w", name, err)
	}
	return nil
}

// ListNamedNS lists the named namespaces whose name starts with prefix, sorted.
//
// Equivalent to: `ip netns list`.
func ListNamedNS(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// errThreadTainted marks a failure to move a thread back to its namespace.
var errThreadTainted = errors.New("could not restore the thread's network namespace")

// onLockedThread runs f on a fresh goroutine locked to its OS thread. The thread is
// unlocked (returned to the pool) only when f did not report errThreadTainted; otherwise it
// stays locked and the runtime terminates it when the goroutine exits.
func onLockedThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := f()
		if !errors.Is(err, errThreadTainted) {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Do runs f with the calling thread in the namespace, on a fresh goroutine locked to its
// OS thread, then moves the thread back. If moving back fails the thread is never returned
// to the pool. Goroutines f starts do not inherit the namespace; sockets f opens and
// processes f starts do.
//
// Equivalent to: `ip netns exec NAME ...` for the duration of f.
func (ns *NS) Do(f func() error) error {
	if !ns.fd.IsOpen() {
		return fmt.Errorf("namespace %s is closed", ns)
	}
	return onLockedThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return fmt.Errorf("open current namespace: %w", err)
		}
		defer orig.Close()
		if err := netns.Set(ns.fd); err != nil {
			return fmt.Errorf("enter namespace %s: %w", ns, err)
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			return errors.Join(ferr, fmt.Errorf("%w: %w", errThreadTainted, err))
		}
		return ferr
	})
}

// Start starts cmd with the namespace as its network namespace (the child is forked from
// a thread inside the namespace).
//
// Equivalent to: `ip netns exec NAME CMD...`.
func (ns *NS) Start(cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}

// Run runs name with args inside the namespace, feeding stdin (may be empty) and returning
// its standard output. A failure carries the command's standard error.
func (ns *NS) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(stdin) > 0 {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := ns.Start(cmd); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	if err := cmd.Wait(); err != nil {
		return []byte(out.String()), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns, err, strings.TrimSpace(errb.String()))
	}
	return []byte(out.String()), nil
}
