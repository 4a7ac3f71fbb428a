// Package vm runs a program inside a real Debian kernel booted under qemu, for when the
// host kernel lacks what a cluster needs (IPVS, ipip, dummy links, loadable modules) or the
// caller is not root.
//
// It mirrors the recipe of the project's kernel lab notes: the Debian 12 (bookworm) kernel
// package that `linux-image-amd64` depends on (6.1.0-N-amd64 by default; KernelPackage
// overrides it) is fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a
// cache ($XDG_CACHE_HOME/knet, else ~/.cache/knet); an initramfs is built from busybox
// (busybox-static), the kernel's networking modules (with a `depmod -b` run), the host's
// iptables (xtables-nft-multi and its extensions), ipset, ipvsadm, nft and ip binaries with
// the shared libraries ldd lists, and an /init script. That base image is cached per kernel
// and tool set; the per-run payload (a static Go binary and the command line) is a second
// uncompressed cpio archive the kernel unpacks over it. qemu runs with software emulation
// (`-accel tcg`: nested KVM hangs on the lab machines) and the program's output is streamed
// back over the serial console between markers, with its exit status.
package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// baseVersion changes whenever the layout of the base image changes, to invalidate caches.
const baseVersion = "4"

// DefaultModules are loaded, in order, before the program runs. busybox modprobe ignores
// softdeps, so crc32c_generic and libcrc32c come before ip_vs (kernel-lab notes, step 5).
// Everything else (xt_*, nft_*, ip_set_*) loads on demand through /sbin/modprobe.
var DefaultModules = []string{
	"crc32c_generic", "libcrc32c",
	"veth", "bridge", "br_netfilter", "dummy", "ipip", "vxlan",
	"nf_conntrack", "nf_nat", "nf_tables", "nft_compat", "nft_chain_nat",
	"ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle", "iptable_raw",
	"ip_set",
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_sh", "ip_vs_dh",
	"ip_vs_mh", "ip_vs_sed", "ip_vs_nq", "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_fo", "ip_vs_ovf",
	"virtio_rng",
}

// DefaultTools are the host binaries copied into the guest (with their libraries).
var DefaultTools = []string{"ip", "iptables", "ipset", "ipvsadm", "nft", "conntrack"}

// Options configure a VM run. Zero values take the stated defaults.
type Options struct {
	// CacheDir holds the kernel package and base initramfs. Default: CacheDir().
	CacheDir string
	// KernelPackage is the Debian package, e.g. "linux-image-6.1.0-56-amd64". Default: what
	// `apt-cache depends linux-image-amd64` names.
	KernelPackage string
	// MemoryMiB is the guest memory (default 1024); CPUs the guest CPUs (default 2).
	MemoryMiB int
	CPUs      int
	// Files are copied into the guest: guest path -> host path (e.g. "/knet/knet" -> a
	// static binary). Directories are created.
	Files map[string]string
	// Env is extra environment for the program, "K=V".
	Env []string
	// Modules overrides DefaultModules.
	Modules []string
	// Log receives progress messages and, on failure, the tail of the console. May be nil.
	Log io.Writer
	// Console, when set, receives the guest console lines outside the program's output
	// (kernel messages, module loading), for debugging.
	Console io.Writer
	// Timeout bounds the whole boot-run-poweroff (default 10 minutes).
	Timeout time.Duration
}

// CacheDir is $XDG_CACHE_HOME/knet, else ~/.cache/knet.
func CacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "knet"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "knet"), nil
}

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Package string // linux-image-6.1.0-56-amd64
	Release string // 6.1.0-56-amd64 (the modules directory name)
	Dir     string // the dpkg-deb -x root
}

// Vmlinuz is the kernel image path.
func (k *Kernel) Vmlinuz() string { return filepath.Join(k.Dir, "boot", "vmlinuz-"+k.Release) }

// ModulesDir is lib/modules/<release> inside the unpacked package.
func (k *Kernel) ModulesDir() string { return filepath.Join(k.Dir, "lib", "modules", k.Release) }

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*)\s*$`)

// ResolveKernelPackage asks apt which kernel package linux-image-amd64 depends on.
//
// Equivalent to: `apt-cache depends linux-image-amd64`.
func ResolveKernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	m := dependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64 names no linux-image-<version> package:\n%s", out)
	}
	return string(m[1]), nil
}

// EnsureKernel returns the unpacked kernel package, downloading (`apt-get download`) and
// unpacking (`dpkg-deb -x`) it into the cache when absent.
func EnsureKernel(ctx context.Context, o Options) (*Kernel, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	pkg := o.KernelPackage
	if pkg == "" {
		// A warm cache works offline: reuse the newest unpacked package.
		if pkg, err = ResolveKernelPackage(ctx); err != nil {
			if cached := cachedKernels(o.CacheDir); len(cached) > 0 {
				pkg = cached[len(cached)-1]
				logf(o.Log, "vm: %v; using cached %s", err, pkg)
			} else {
				return nil, err
			}
		}
	}
	release := strings.TrimPrefix(pkg, "linux-image-")
	k := &Kernel{Package: pkg, Release: release, Dir: filepath.Join(o.CacheDir, "kernel", pkg)}
	if _, err := os.Stat(k.Vmlinuz()); err == nil {
		if _, err := os.Stat(k.ModulesDir()); err == nil {
			return k, nil
		}
	}
	dl := filepath.Join(o.CacheDir, "deb")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) == 0 {
		logf(o.Log, "vm: downloading %s with apt-get download", pkg)
		cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
		cmd.Dir = dl
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("apt-get download %s: %w: %s", pkg, err, bytes.TrimSpace(out))
		}
		if debs, _ = filepath.Glob(filepath.Join(dl, pkg+"_*.deb")); len(debs) == 0 {
			return nil, fmt.Errorf("apt-get download %s left no .deb in %s", pkg, dl)
		}
	}
	tmp := k.Dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	logf(o.Log, "vm: unpacking %s", filepath.Base(debs[0]))
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("dpkg-deb -x %s: %w: %s", debs[0], err, bytes.TrimSpace(out))
	}
	os.RemoveAll(k.Dir)
	if err := os.Rename(tmp, k.Dir); err != nil {
		return nil, fmt.Errorf("install unpacked kernel: %w", err)
	}
	if _, err := os.Stat(k.Vmlinuz()); err != nil {
		return nil, fmt.Errorf("kernel package %s has no %s: %w", pkg, k.Vmlinuz(), err)
	}
	return k, nil
}

func cachedKernels(cache string) []string {
	ents, _ := os.ReadDir(filepath.Join(cache, "kernel"))
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "linux-image-") && !strings.HasSuffix(e.Name(), ".tmp") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func (o Options) withDefaults() (Options, error) {
	if o.CacheDir == "" {
		d, err := CacheDir()
		if err != nil {
			return o, err
		}
		o.CacheDir = d
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.Modules == nil {
		o.Modules = DefaultModules
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	return o, nil
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// moduleDirs are the parts of lib/modules/<release>/kernel whose modules are all copied
// (they load on demand: xt_*, nft_*, ip_set_*, nf_*); modules named in Options.Modules are
// copied wherever they live, and modules.dep closes both sets over their dependencies.
var moduleDirs = []string{
	"kernel/net/netfilter/", "kernel/net/ipv4/netfilter/", "kernel/net/ipv6/netfilter/",
	"kernel/net/bridge/",
}

// selectModules returns the module files (relative to the modules directory) to copy.
func selectModules(modDir string, wanted []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	var all []string
	for i, line := range strings.Split(string(dep), "\n") {
		if line == "" {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("modules.dep:%d: no colon in %q", i+1, line)
		}
		deps[mod] = strings.Fields(rest)
		name := strings.TrimSuffix(filepath.Base(mod), ".ko")
		byName[strings.ReplaceAll(name, "-", "_")] = mod
		all = append(all, mod)
	}
	var queue []string
	for _, m := range all {
		for _, d := range moduleDirs {
			if strings.HasPrefix(m, d) {
				queue = append(queue, m)
			}
		}
	}
	for _, w := range wanted {
		if m, ok := byName[strings.ReplaceAll(w, "-", "_")]; ok {
			queue = append(queue, m)
		}
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		if seen[m] {
			continue
		}
		seen[m] = true
		queue = append(queue, deps[m]...)
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// tool is a host binary and the names it is reachable by in the guest.
type tool struct {
	path  string   // resolved host path, copied to the same path in the guest
	links []string // other guest paths pointing at it
}

func resolveTools(names []string) ([]tool, error) {
	var out []tool
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			for _, d := range []string{"/usr/sbin", "/sbin"} {
				if _, serr := os.Stat(filepath.Join(d, n)); serr == nil {
					p, err = filepath.Join(d, n), nil
					break
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("guest tool %s: %w (install it: scripts/install-test-deps.sh)", n, err)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("guest tool %s: %w", n, err)
		}
		t := tool{path: real}
		if filepath.Base(real) != n {
			t.links = append(t.links, filepath.Join("/usr/sbin", n))
		}
		if n == "iptables" && strings.Contains(filepath.Base(real), "multi") {
			for _, l := range []string{"iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
				t.links = append(t.links, filepath.Join("/usr/sbin", l))
			}
		}
		out = append(out, t)
	}
	return out, nil
}

var lddRE = regexp.MustCompile(`(?m)(?:=>\s*)?(/[^\s]+)\s+\(0x`)

// libraries lists the shared objects ldd names for the given files (absolute paths).
func libraries(ctx context.Context, files []string) ([]string, error) {
	seen := map[string]bool{}
	for _, f := range files {
		out, err := exec.CommandContext(ctx, "ldd", f).Output()
		if err != nil {
			// "not a dynamic executable" (a static binary) exits 1: nothing to copy.
			continue
		}
		for _, m := range lddRE.FindAllSubmatch(out, -1) {
			seen[string(m[1])] = true
		}
	}
	var libs []string
	for l := range seen {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	return libs, nil
}

// BaseImage returns the path of the cached base initramfs (gzip cpio) for the kernel and
// the host tools, building it when absent.
func BaseImage(ctx context.Context, o Options, k *Kernel) (string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return "", err
	}
	tools, err := resolveTools(DefaultTools)
	if err != nil {
		return "", err
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox (busybox-static) is needed for the guest: %w", err)
	}
	// The key covers the kernel, the tool binaries (path, size, mtime) and the layout.
	h := sha256.New()
	fmt.Fprintln(h, baseVersion, k.Package, busybox, o.Modules)
	for _, t := range append([]tool{{path: busybox}}, tools...) {
		st, err := os.Stat(t.path)
		if err != nil {
			return "", fmt.Errorf("guest tool: %w", err)
		}
		fmt.Fprintln(h, t.path, st.Size(), st.ModTime().UnixNano(), t.links)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	out := filepath.Join(o.CacheDir, "initramfs", k.Release+"-"+key+".cpio.gz")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	logf(o.Log, "vm: building the base initramfs for %s", k.Release)
	stage, err := os.MkdirTemp(o.CacheDir, "stage-")
	if err != nil {
		return "", fmt.Errorf("create staging directory: %w", err)
	}
	defer os.RemoveAll(stage)

	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "run", "tmp", "etc", "lib", "lib64", "var/run"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := copyFile(busybox, filepath.Join(stage, "bin/busybox")); err != nil {
		return "", err
	}
	// The kernel runs /sbin/modprobe to load modules on demand (xt_*, nft_*, ip_set_*).
	if err := os.Symlink("/bin/busybox", filepath.Join(stage, "sbin/modprobe")); err != nil {
		return "", err
	}
	var elfs []string
	for _, t := range tools {
		if err := copyFile(t.path, filepath.Join(stage, t.path)); err != nil {
			return "", err
		}
		elfs = append(elfs, t.path)
		for _, l := range t.links {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(stage, l)), 0o755); err != nil {
				return "", err
			}
			if err := os.Symlink(t.path, filepath.Join(stage, l)); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("link %s: %w", l, err)
			}
		}
	}
	// iptables loads its match and target extensions with dlopen; ldd does not list them.
	if xt, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/xtables/*.so"); len(xt) > 0 {
		for _, f := range xt {
			if err := copyFile(f, filepath.Join(stage, f)); err != nil {
				return "", err
			}
		}
		elfs = append(elfs, xt...)
	}
	libs, err := libraries(ctx, elfs)
	if err != nil {
		return "", err
	}
	for _, l := range libs {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return "", fmt.Errorf("library %s: %w", l, err)
		}
		if err := copyFile(real, filepath.Join(stage, l)); err != nil {
			return "", err
		}
	}
	// iptables-nft wants these to exist.
	os.WriteFile(filepath.Join(stage, "etc/ethertypes"), nil, 0o644)
	os.WriteFile(filepath.Join(stage, "etc/protocols"), []byte(protocols), 0o644)
	os.WriteFile(filepath.Join(stage, "etc/services"), nil, 0o644)
	os.WriteFile(filepath.Join(stage, "etc/passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644)

	// Modules: the networking subset, the module index files and a depmod run.
	mdst := filepath.Join(stage, "lib/modules", k.Release)
	if _, err := os.Stat(filepath.Join(k.ModulesDir(), "modules.dep")); err != nil {
		// The package ships no modules.dep (the postinst makes it): index it once.
		if out, err := exec.CommandContext(ctx, "depmod", "-b", k.Dir, k.Release).CombinedOutput(); err != nil {
			return "", fmt.Errorf("depmod -b %s %s: %w: %s", k.Dir, k.Release, err, bytes.TrimSpace(out))
		}
	}
	mods, err := selectModules(k.ModulesDir(), o.Modules)
	if err != nil {
		return "", err
	}
	for _, m := range mods {
		if err := copyFile(filepath.Join(k.ModulesDir(), m), filepath.Join(mdst, m)); err != nil {
			return "", err
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := copyFile(filepath.Join(k.ModulesDir(), f), filepath.Join(mdst, f)); err != nil {
			return "", err
		}
	}
	if out, err := exec.CommandContext(ctx, "depmod", "-b", stage, k.Release).CombinedOutput(); err != nil {
		return "", fmt.Errorf("depmod -b %s %s: %w: %s", stage, k.Release, err, bytes.TrimSpace(out))
	}
	if err := os.WriteFile(filepath.Join(stage, "init"), []byte(initScript), 0o755); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	if err := cpioArchive(ctx, stage, out+".tmp", true); err != nil {
		return "", err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return "", err
	}
	return out, nil
}

// protocols is the /etc/protocols subset iptables and nft look names up in.
const protocols = `ip	0	IP
icmp	1	ICMP
tcp	6	TCP
udp	17	UDP
ipv6	41	IPv6
gre	47	GRE
esp	50	ESP
ah	51	AH
ipv6-icmp	58	IPv6-ICMP
sctp	132	SCTP
`

// initScript is the guest's /init. It mounts the pseudo file systems, loads the modules
// named in /knet/modules, runs /knet/run with its output between markers and powers off.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
echo "knet-vm: init at $(cut -d' ' -f1 /proc/uptime)s" >&2
mkdir -p /run/netns /dev/pts
ip link set lo up
for m in $(cat /knet/modules); do modprobe "$m" >/dev/null 2>&1 || echo "knet-vm: modprobe $m failed" >&2; done
if [ -f /knet/env ]; then . /knet/env; fi
echo "knet-vm: modules loaded at $(cut -d' ' -f1 /proc/uptime)s" >&2
echo "@@KNET-BEGIN@@"
/bin/sh /knet/run </dev/null 2>&1
rc=$?
echo "@@KNET-EXIT=$rc@@"
sync
poweroff -f
`

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

func copyTree(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return copyFile(src, dst)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
}

// cpioArchive writes dir as a newc cpio archive (gzip-compressed when gz).
//
// Equivalent to: `cd DIR && find . | cpio -o -H newc | gzip`.
func cpioArchive(ctx context.Context, dir, out string, gz bool) error {
	script := `find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0`
	if gz {
		script += ` | gzip -1`
	}
	script += ` > "$1"`
	cmd := exec.CommandContext(ctx, "sh", "-c", script, "sh", out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cpio archive of %s: %w: %s", dir, err, bytes.TrimSpace(b))
	}
	return nil
}

// Result is how a guest run ended.
type Result struct {
	// ExitCode is the program's exit status inside the guest.
	ExitCode int
	// Boot is the time from starting qemu to the program starting; Total the whole run.
	Boot, Total time.Duration
}

// Run boots the kernel with the base image plus a payload holding o.Files and the shell
// command line script, runs script with /bin/sh inside the guest, streams its output
// (stdout and stderr merged) to out and returns its exit status.
func Run(ctx context.Context, o Options, script string, out io.Writer) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 is needed for --vm (apt-get install qemu-system-x86): %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	k, err := EnsureKernel(ctx, o)
	if err != nil {
		return nil, err
	}
	base, err := BaseImage(ctx, o, k)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "knet-vm-")
	if err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(work)
	stage := filepath.Join(work, "payload")
	if err := os.MkdirAll(filepath.Join(stage, "knet"), 0o755); err != nil {
		return nil, err
	}
	for _, dst := range sortedKeys(o.Files) {
		if err := copyFile(o.Files[dst], filepath.Join(stage, dst)); err != nil {
			return nil, err
		}
	}
	var env strings.Builder
	for _, e := range o.Env {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("environment entry %q is not K=V", e)
		}
		fmt.Fprintf(&env, "export %s=%s\n", k, shellQuote(v))
	}
	files := map[string]string{
		// busybox sh prefers its own applets to PATH; the real iproute2 must win.
		"knet/run":     "ip() { /usr/bin/ip \"$@\"; }\n" + script + "\n",
		"knet/modules": strings.Join(o.Modules, "\n") + "\n",
		"knet/env":     env.String(),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(stage, name), []byte(body), 0o755); err != nil {
			return nil, err
		}
	}
	payload := filepath.Join(work, "payload.cpio")
	if err := cpioArchive(ctx, stage, payload, false); err != nil {
		return nil, err
	}
	initrd := filepath.Join(work, "initrd")
	if err := concat(initrd, base, payload); err != nil {
		return nil, err
	}

	args := []string{
		"-accel", "tcg", "-m", strconv.Itoa(o.MemoryMiB), "-smp", strconv.Itoa(o.CPUs),
		"-cpu", "max", "-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "stdio", "-no-reboot",
		"-kernel", k.Vmlinuz(), "-initrd", initrd,
		"-append", "console=ttyS0 quiet loglevel=1 panic=-1 random.trust_cpu=on",
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdin = nil
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	logf(o.Log, "vm: booting %s under qemu (tcg)", k.Release)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	res := &Result{ExitCode: -1}
	console, scanErr := streamConsole(stdout, out, o.Console, res, start)
	werr := cmd.Wait()
	res.Total = time.Since(start)
	if scanErr != nil {
		return res, scanErr
	}
	if res.ExitCode < 0 {
		if ctx.Err() != nil {
			return res, fmt.Errorf("vm run: %w; console tail:\n%s", ctx.Err(), console)
		}
		return res, fmt.Errorf("vm ended without the program's exit status (qemu: %v %s); console tail:\n%s", werr, bytes.TrimSpace(stderr.Bytes()), console)
	}
	return res, nil
}

// streamConsole copies the program's lines (between the markers) to out and records its
// exit status; it returns the tail of everything else for error messages.
func streamConsole(r io.Reader, out, other io.Writer, res *Result, start time.Time) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var tail []string
	in := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case !in && strings.HasSuffix(line, "@@KNET-BEGIN@@"):
			in = true
			res.Boot = time.Since(start)
			continue
		case in && strings.HasPrefix(line, "@@KNET-EXIT="):
			rc, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, "@@KNET-EXIT="), "@@"))
			if err == nil {
				res.ExitCode = rc
			}
			in = false
			continue
		}
		if in {
			if _, err := io.WriteString(out, line+"\n"); err != nil {
				return "", fmt.Errorf("write guest output: %w", err)
			}
			continue
		}
		if other != nil {
			fmt.Fprintf(other, "%s\n", line)
		}
		tail = append(tail, line)
		if len(tail) > 40 {
			tail = tail[1:]
		}
	}
	return strings.Join(tail, "\n"), nil
}

func concat(dst string, srcs ...string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		in, err := os.Open(s)
		if err != nil {
			f.Close()
			return err
		}
		n, err := io.Copy(f, in)
		in.Close()
		if err != nil {
			f.Close()
			return fmt.Errorf("write initrd: %w", err)
		}
		// The kernel looks for the next archive on a 4-byte boundary (it skips zero
		// padding); pad to 512 like cpio does.
		if pad := (512 - n%512) % 512; pad > 0 {
			if _, err := f.Write(make([]byte, pad)); err != nil {
				f.Close()
				return fmt.Errorf("write initrd: %w", err)
			}
		}
	}
	return f.Close()
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellQuote joins argv into one /bin/sh command line.
func ShellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// BuildStatic builds a static Linux/amd64 binary (CGO_ENABLED=0) for the guest: the knet
// command when test is false (`go build`), else the test binary of pkg (`go test -c`).
//
// Equivalent to: `CGO_ENABLED=0 go build -o OUT PKG` or `CGO_ENABLED=0 go test -c -o OUT PKG`.
func BuildStatic(ctx context.Context, moduleDir, pkg, out string, test bool) error {
	args := []string{"build", "-o", out, pkg}
	if test {
		args = []string{"test", "-c", "-vet=off", "-o", out, pkg}
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(b))
	}
	return nil
}

// ModuleDir finds the directory of the go.mod enclosing dir.
func ModuleDir(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}
