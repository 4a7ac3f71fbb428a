package vm

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// IsStatic reports whether the ELF binary at path needs no dynamic loader.
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// StaticKnet returns a statically linked knet binary for the guest: exe itself when it is
// static, else one built (CGO_ENABLED=0) from the knet module found above the working
// directory into the cache.
func StaticKnet(ctx context.Context, o Options, exe string) (string, error) {
	if ok, err := IsStatic(exe); err == nil && ok {
		return exe, nil
	}
	o, err := o.withDefaults()
	if err != nil {
		return "", err
	}
	wd, _ := os.Getwd()
	mod, err := ModuleDir(wd)
	if err == nil {
		b, rerr := os.ReadFile(filepath.Join(mod, "go.mod"))
		if rerr != nil || !strings.Contains(string(b), "module github.com/knet-dev/knet\n") {
			err = errors.New("not the knet module")
		}
	}
	if err != nil {
		return "", fmt.Errorf("%s is dynamically linked and no knet source is here to build a static one (build knet with CGO_ENABLED=0): %w", exe, err)
	}
	// One static build per (dynamic) knet binary: keyed by its size and modification time.
	st, err := os.Stat(exe)
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", exe, err)
	}
	out := filepath.Join(o.CacheDir, fmt.Sprintf("knet-static-%d-%d", st.Size(), st.ModTime().UnixNano()))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return "", err
	}
	logf(o.Log, "vm: building a static knet (CGO_ENABLED=0) from %s", mod)
	if err := BuildStatic(ctx, mod, "./cmd/knet", out+".tmp", false); err != nil {
		return "", err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return "", err
	}
	return out, nil
}

// RunKnet runs `knet ARGS...` inside the guest with the static binary at /knet/knet and
// files (guest path -> host path) copied in, streaming its output to out.
func RunKnet(ctx context.Context, o Options, knet string, args []string, out io.Writer) (*Result, error) {
	if o.Files == nil {
		o.Files = map[string]string{}
	}
	o.Files["/knet/knet"] = knet
	return Run(ctx, o, "cd /knet && "+ShellQuote(append([]string{"/knet/knet"}, args...)), out)
}
