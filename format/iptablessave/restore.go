package iptablessave

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	nf "github.com/knet-dev/knet/dataplane/netfilter"
)

// RestoreOptions mirror iptables-restore's flags.
type RestoreOptions struct {
	// NoFlush is --noflush: tables are not flushed at `*table`; only chains declared with a
	// `:` line are flushed (user chains) or have their policy set (builtin chains).
	NoFlush bool
	// Counters is --counters: `[p:b]` on chain and rule lines are applied (otherwise
	// ignored, as the real tool does).
	Counters bool
	// OnDiagnostic, if set, receives what the input used that the model keeps verbatim.
	OnDiagnostic func(Diagnostic)
}

// applier applies commands to a ruleset with iptables-restore's semantics. Each table block
// is applied to a working copy that replaces the table at COMMIT, so a failing block leaves
// the table as it was (earlier committed blocks stay, as with iptables-nft).
type applier struct {
	rs    *nf.Ruleset
	opts  RestoreOptions
	file  string
	parse bool // Parse mode: a dump, not a transaction

	cur     *nf.Table // working copy of the table being restored
	curLine int       // line of the *table line
	last    *nf.Chain // chain of the previous rule line (lookup cache)
	diags   []Diagnostic

	orig         *nf.Table // the table as it was when the block began
	renames      []rename  // -E commands queued until COMMIT
	createdNames []string  // chains created in the current block
}

func (a *applier) errf(line int, err error, format string, args ...any) *Error {
	return &Error{File: a.file, Line: line, Msg: fmt.Sprintf(format, args...), Err: err}
}

// cloneTable returns a copy of t whose chains and rule slices can be changed without
// touching t (rules are shared; they are replaced, not mutated, by later commands).
func cloneTable(t *nf.Table) *nf.Table {
	c := &nf.Table{Name: t.Name, Chains: make([]*nf.Chain, len(t.Chains))}
	for i, ch := range t.Chains {
		x := *ch
		x.Rules = slices.Clip(ch.Rules)
		c.Chains[i] = &x
	}
	return c
}

func (a *applier) apply(cmd *Command) error {
	switch cmd.Kind {
	case KindBlank, KindComment:
		return nil
	case KindTable:
		if a.cur != nil {
			return a.errf(cmd.Line, nil, "COMMIT expected before *%s (table %s opened at line %d)", cmd.Table, a.cur.Name, a.curLine)
		}
		defer func() {
			if a.cur != nil && cmd.Decls > 16 {
				a.cur.Grow(cmd.Decls)
			}
		}()
		a.curLine = cmd.Line
		a.last = nil
		old := a.rs.Table(cmd.Table)
		a.orig = old
		switch {
		case old == nil:
			a.cur = nf.NewTable(cmd.Table)
		case a.parse:
			a.cur = old
		case !a.opts.NoFlush:
			a.cur = nf.NewTable(cmd.Table)
		default:
			a.cur = cloneTable(old)
		}
		return nil
	}
	if a.cur == nil {
		return a.errf(cmd.Line, nil, "%s outside a table (no *TABLE line before it)", describe(cmd))
	}
	t := a.cur
	switch cmd.Kind {
	case KindCommit:
		if err := a.checkJumps(t); err != nil {
			return err
		}
		a.applyRenames(t)
		a.install(t)
		a.cur, a.last, a.renames, a.createdNames = nil, nil, nil, nil
		return nil
	case KindChain:
		builtin := nf.IsBuiltinChain(t.Name, cmd.Chain)
		// A policy on a user chain's `:` line is ignored, as the real tool does.
		c, err := t.AddChain(cmd.Chain) // one lookup for the common case, a new chain
		if err == nil {
			c.Builtin = builtin
			a.created(c.Name)
		} else if c = t.Chain(cmd.Chain); !builtin && !a.parse {
			c.Rules = nil // --noflush: a declared user chain is flushed
		}
		if builtin {
			if cmd.Policy != nf.PolicyNone {
				c.Policy = cmd.Policy
			} else if a.parse {
				c.Policy = nf.PolicyNone
			}
		}
		if a.parse || a.opts.Counters {
			c.Counters = cmd.Counters
		}
		return nil
	case KindAppend, KindInsert, KindReplace:
		c := a.chain(t, cmd)
		if c == nil {
			if !a.parse {
				return a.errf(cmd.Line, nf.ErrNoChain, "%s %s: no chain/target/match by that name", cmd.Kind, cmd.Chain)
			}
			c, _ = t.AddChain(cmd.Chain)
			c.Builtin = nf.IsBuiltinChain(t.Name, cmd.Chain)
			a.diags = append(a.diags, Diagnostic{File: a.file, Line: cmd.Line, Message: fmt.Sprintf("chain %s used before it was declared", cmd.Chain)})
		}
		r := cmd.Rule
		if !a.parse && !a.opts.Counters {
			r.Counters = nf.Counters{}
		}
		switch cmd.Kind {
		case KindAppend:
			c.Rules = append(c.Rules, r)
		case KindInsert:
			pos := max(cmd.Num, 1)
			if pos > len(c.Rules)+1 {
				return a.errf(cmd.Line, nf.ErrIndexOutOfRange, "-I %s %d: index of insertion too big", cmd.Chain, pos)
			}
			c.Rules = slices.Insert(slices.Clip(c.Rules), pos-1, r)
		case KindReplace:
			if cmd.Num > len(c.Rules) {
				return a.errf(cmd.Line, nf.ErrIndexOutOfRange, "-R %s %d: index of replacement too big", cmd.Chain, cmd.Num)
			}
			c.Rules = slices.Clone(c.Rules)
			c.Rules[cmd.Num-1] = r
		}
		return nil
	case KindDelete:
		c := a.chain(t, cmd)
		if c == nil {
			return a.errf(cmd.Line, nf.ErrNoChain, "-D %s: no chain/target/match by that name", cmd.Chain)
		}
		idx := cmd.Num - 1
		if cmd.Rule != nil {
			idx = findRule(c, cmd.Rule, a.rs.Family)
			if idx < 0 {
				return a.errf(cmd.Line, nil, "-D %s: bad rule (does a matching rule exist in that chain?)", cmd.Chain)
			}
		} else if idx >= len(c.Rules) {
			return a.errf(cmd.Line, nf.ErrIndexOutOfRange, "-D %s %d: index of deletion too big", cmd.Chain, cmd.Num)
		}
		c.Rules = slices.Delete(slices.Clone(c.Rules), idx, idx+1)
		return nil
	case KindNewChain:
		if _, err := t.AddChain(cmd.Chain); err != nil || nf.IsBuiltinChain(t.Name, cmd.Chain) {
			return a.errf(cmd.Line, nf.ErrChainExists, "-N %s: chain already exists", cmd.Chain)
		}
		a.created(cmd.Chain)
		return nil
	case KindDeleteChain:
		a.last = nil
		if cmd.Chain == "" {
			var keep []*nf.Chain
			for _, c := range t.Chains {
				if c.Builtin || nf.IsBuiltinChain(t.Name, c.Name) {
					keep = append(keep, c)
				}
			}
			for _, c := range keep {
				for _, r := range c.Rules {
					if j, ok := r.Target.(*nf.Jump); ok {
						return a.errf(cmd.Line, nf.ErrChainInUse, "CHAIN_DEL failed (Device or resource busy): chain %s", j.Chain)
					}
				}
			}
			t.Chains = keep
			return nil
		}
		if err := t.DeleteChain(cmd.Chain); err != nil {
			switch {
			case errors.Is(err, nf.ErrNoChain):
				return a.errf(cmd.Line, err, "-X %s: no chain/target/match by that name", cmd.Chain)
			case errors.Is(err, nf.ErrBuiltinChain):
				return a.errf(cmd.Line, err, "-X %s: cannot delete built-in chain", cmd.Chain)
			}
			return a.errf(cmd.Line, err, "CHAIN_DEL failed (Device or resource busy): chain %s", cmd.Chain)
		}
		return nil
	case KindFlush, KindZero:
		var chains []*nf.Chain
		if cmd.Chain == "" {
			chains = t.Chains
		} else if c := t.Chain(cmd.Chain); c != nil {
			chains = []*nf.Chain{c}
		} else {
			return a.errf(cmd.Line, nf.ErrNoChain, "%s %s: no chain/target/match by that name", cmd.Kind, cmd.Chain)
		}
		for _, c := range chains {
			if cmd.Kind == KindFlush {
				c.Rules = nil
				continue
			}
			c.Counters = nf.Counters{}
			if nf.IsBuiltinChain(t.Name, c.Name) && !a.parse {
				// iptables-nft 1.8.9 re-sends a zeroed base chain with the policy it had
				// when the block began, undoing a -P earlier in the block (verified
				// against the real tool).
				c.Policy = nf.PolicyAccept
				if a.orig != nil {
					if oc := a.orig.Chain(c.Name); oc != nil && oc.Policy != nf.PolicyNone && oc.Policy != "" {
						c.Policy = oc.Policy
					}
				}
			}
			for i, r := range c.Rules {
				x := *r
				x.Counters = nf.Counters{}
				c.Rules[i] = &x
			}
		}
		return nil
	case KindPolicy:
		c := t.Chain(cmd.Chain)
		if c == nil || !nf.IsBuiltinChain(t.Name, cmd.Chain) {
			return a.errf(cmd.Line, nf.ErrNoChain, "-P %s: bad built-in chain name", cmd.Chain)
		}
		c.Policy = cmd.Policy
		return nil
	case KindRename:
		// iptables-nft queues the rename for COMMIT: in the rest of the block the chain
		// keeps its old name and the new name is unknown; renaming a chain created in the
		// same block fails in the kernel.
		c := t.Chain(cmd.Chain)
		if c == nil || nf.IsBuiltinChain(t.Name, cmd.Chain) {
			return a.errf(cmd.Line, nf.ErrNoChain, "-E %s: no chain/target/match by that name", cmd.Chain)
		}
		if t.Chain(cmd.NewName) != nil {
			return a.errf(cmd.Line, nf.ErrChainExists, "-E %s %s: chain already exists", cmd.Chain, cmd.NewName)
		}
		if a.isCreated(cmd.Chain) {
			return a.errf(cmd.Line, nf.ErrNoChain, "CHAIN_RENAME failed (No such file or directory): chain %s", cmd.NewName)
		}
		a.renames = append(a.renames, rename{chain: c, newName: cmd.NewName})
		return nil
	}
	return a.errf(cmd.Line, nil, "unsupported command %q", cmd.Kind)
}

// rename is a queued `-E OLD NEW`.
type rename struct {
	chain   *nf.Chain
	newName string
}

func (a *applier) created(name string) {
	if !a.parse {
		a.createdNames = append(a.createdNames, name)
	}
}

// isCreated reports whether the chain was created in the current block (only asked by the
// rare -E, so a linear scan keeps the common path free of a map).
func (a *applier) isCreated(name string) bool { return slices.Contains(a.createdNames, name) }

// applyRenames performs the block's queued renames: the chain takes its new name and every
// jump to it follows (the kernel links jumps to the chain, not to its name).
func (a *applier) applyRenames(t *nf.Table) {
	if len(a.renames) == 0 {
		return
	}
	for _, rn := range a.renames {
		old := rn.chain.Name
		rn.chain.Name = rn.newName
		for _, ch := range t.Chains {
			for i, r := range ch.Rules {
				if j, ok := r.Target.(*nf.Jump); ok && j.Chain == old {
					x := *r
					x.Target = &nf.Jump{Chain: rn.newName, Goto: j.Goto}
					x.Text = ""
					ch.Rules[i] = &x
				}
			}
		}
	}
	// Rebuild the table's name index.
	*t = nf.Table{Name: t.Name, Chains: t.Chains}
}

// isEdit reports commands that change an existing table (as opposed to the dump structure).
func isEdit(k CommandKind) bool {
	switch k {
	case KindInsert, KindDelete, KindReplace, KindNewChain, KindDeleteChain, KindFlush, KindZero, KindPolicy, KindRename:
		return true
	}
	return false
}

func describe(cmd *Command) string {
	switch cmd.Kind {
	case KindChain:
		return "chain declaration"
	case KindCommit:
		return "COMMIT"
	}
	return "rule " + string(cmd.Kind)
}

// chain finds the chain a rule command names, caching the last one.
func (a *applier) chain(t *nf.Table, cmd *Command) *nf.Chain {
	if a.last != nil && a.last.Name == cmd.Chain {
		return a.last
	}
	c := t.Chain(cmd.Chain)
	a.last = c
	return c
}

// findRule returns the index of the first rule of c equal to r (same canonical text), or -1.
func findRule(c *nf.Chain, r *nf.Rule, fam nf.Family) int {
	want := AppendRule(nil, r, fam)
	var buf []byte
	for i, x := range c.Rules {
		buf = AppendRule(buf[:0], x, fam)
		if bytes.Equal(buf, want) {
			return i
		}
	}
	return -1
}

// checkJumps fails, as the real tool does at COMMIT, if a rule jumps to a chain that does
// not exist in the table.
func (a *applier) checkJumps(t *nf.Table) error {
	last := ""
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			j, ok := r.Target.(*nf.Jump)
			if !ok || j.Chain == last {
				continue
			}
			if t.Chain(j.Chain) != nil {
				last = j.Chain
				continue
			}
			if a.parse {
				a.diags = append(a.diags, Diagnostic{File: a.file, Line: r.Line, Message: fmt.Sprintf("jump to chain %s, which is not declared in table %s", j.Chain, t.Name)})
				continue
			}
			return a.errf(r.Line, nf.ErrNoChain, "chain '%s' does not exist", j.Chain)
		}
	}
	return nil
}

// install puts the committed table into the ruleset (in iptables-save table order).
func (a *applier) install(t *nf.Table) {
	for i, old := range a.rs.Tables {
		if old.Name == t.Name {
			a.rs.Tables[i] = t
			return
		}
	}
	x := a.rs.EnsureTable(t.Name)
	*x = nf.Table{Name: t.Name, Chains: t.Chains}
	for i, old := range a.rs.Tables {
		if old == x {
			a.rs.Tables[i] = t
		}
	}
}

// finish reports an unterminated table.
func (a *applier) finish(lastLine int) error {
	if a.cur != nil {
		return a.errf(lastLine+1, nil, "COMMIT expected at line %d (table %s opened at line %d)", lastLine+1, a.cur.Name, a.curLine)
	}
	return nil
}

// run feeds every command of the scanner to the applier.
func run(s *scanner, a *applier, each func(*Command)) error {
	var cmd Command
	for {
		err := s.next(&cmd)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if each != nil {
			each(&cmd)
		}
		if a != nil {
			if err := a.apply(&cmd); err != nil {
				if a.parse && isEdit(cmd.Kind) {
					// A dump is read, not executed: an edit that would fail (e.g. -X of a
					// chain the dump never declared) is reported and skipped.
					var pe *Error
					if errors.As(err, &pe) {
						a.diags = append(a.diags, Diagnostic{File: pe.File, Line: pe.Line, Col: pe.Col, Message: pe.Msg + " (skipped)"})
						continue
					}
				}
				return err
			}
		}
	}
	if a != nil {
		return a.finish(s.line)
	}
	return nil
}

// Parse reads iptables-save output (or any dump in restore format) into a ruleset. The
// family is taken from the header (`ip6tables-save`) or the first address. Unknown match
// modules, targets and options are kept verbatim and reported as diagnostics; malformed
// structure (a rule outside a table, a missing COMMIT, an unknown table, a bad address) is
// an error `file:line[:col]: message`.
func Parse(r io.Reader, file string) (*nf.Ruleset, []Diagnostic, error) {
	data, err := readAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	return parseString(data, file, detectFamily(data))
}

// ParseFamily is Parse with the address family given.
func ParseFamily(r io.Reader, file string, fam nf.Family) (*nf.Ruleset, []Diagnostic, error) {
	data, err := readAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	return parseString(data, file, fam)
}

func parseString(data, file string, fam nf.Family) (*nf.Ruleset, []Diagnostic, error) {
	rs := &nf.Ruleset{Family: fam}
	s := newScanner(data, file, fam, false)
	a := &applier{rs: rs, file: file, parse: true, opts: RestoreOptions{Counters: true}}
	err := run(s, a, nil)
	diags := append(s.diags, a.diags...)
	slices.SortStableFunc(diags, func(x, y Diagnostic) int { return x.Line - y.Line })
	if err != nil {
		return nil, diags, err
	}
	return rs, diags, nil
}

// Restore applies iptables-restore input to base exactly as `iptables-restore [--noflush]
// [--counters]` (v1.8.9, nf_tables) does: `*table` opens a table (flushing it unless
// NoFlush) and creates its builtin chains, `:CHAIN POLICY [p:b]` declares a chain (flushing
// an existing user chain), `-A -I -D -R -N -X -F -Z -P -E` edit it, and COMMIT checks that
// every jump names an existing chain and installs the table. A failing table block leaves
// that table unchanged; tables committed before it stay, as with the real tool.
func Restore(base *nf.Ruleset, r io.Reader, file string, opts RestoreOptions) error {
	data, err := readAll(r)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	return restoreString(base, data, file, opts)
}

func restoreString(base *nf.Ruleset, data, file string, opts RestoreOptions) error {
	if base.Family == "" {
		base.Family = nf.IPv4
	}
	s := newScanner(data, file, base.Family, true)
	a := &applier{rs: base, file: file, opts: opts}
	err := run(s, a, nil)
	if opts.OnDiagnostic != nil {
		for _, d := range s.diags {
			opts.OnDiagnostic(d)
		}
	}
	return err
}

// Script is iptables-restore input as a list of commands, kept in order so that it prints
// back exactly as written (kube-proxy writes rules in generation order, not grouped).
type Script struct {
	Family   nf.Family
	Commands []Command
}

// ParseRestore reads iptables-restore input into a Script without applying it. Every rule
// is parsed into the model; structural and option errors are errors.
func ParseRestore(r io.Reader, file string, fam nf.Family) (*Script, []Diagnostic, error) {
	data, err := readAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", file, err)
	}
	if fam == "" {
		fam = detectFamily(data)
	}
	s := newScanner(data, file, fam, true)
	sc := &Script{Family: fam}
	var depth *Command
	err = run(s, nil, func(c *Command) {
		sc.Commands = append(sc.Commands, *c)
		if c.Kind == KindTable {
			depth = &sc.Commands[len(sc.Commands)-1]
		} else if c.Kind == KindCommit {
			depth = nil
		}
	})
	if err == nil && depth != nil {
		err = &Error{File: file, Line: s.line + 1, Msg: fmt.Sprintf("COMMIT expected at line %d", s.line+1)}
	}
	if err != nil {
		return nil, s.diags, err
	}
	return sc, s.diags, nil
}

// Apply applies the script to base as Restore does.
func (sc *Script) Apply(base *nf.Ruleset, file string, opts RestoreOptions) error {
	if base.Family == "" {
		base.Family = sc.Family
	}
	a := &applier{rs: base, file: file, opts: opts}
	last := 0
	for i := range sc.Commands {
		c := sc.Commands[i]
		if c.Rule != nil {
			x := *c.Rule
			c.Rule = &x
		}
		if err := a.apply(&c); err != nil {
			return err
		}
		last = c.Line
	}
	return a.finish(last)
}

// Write prints the script as iptables-restore input: rules with the text they were written
// with, other lines in canonical form, comments and blank lines as read.
func (sc *Script) Write(w io.Writer) error {
	var b []byte
	for i := range sc.Commands {
		c := &sc.Commands[i]
		b = appendCommand(b, c, sc.Family)
		if len(b) > flushAt {
			if _, err := w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
	}
	_, err := w.Write(b)
	return err
}

func appendCommand(b []byte, c *Command, fam nf.Family) []byte {
	switch c.Kind {
	case KindBlank, KindComment:
		b = append(b, c.Text...)
	case KindTable:
		b = append(b, '*')
		b = append(b, c.Table...)
	case KindChain:
		b = append(b, ':')
		b = append(b, c.Chain...)
		b = append(b, ' ')
		b = append(b, c.Policy...)
		b = appendCounters(b, c.Counters)
	case KindCommit:
		b = append(b, "COMMIT"...)
	default:
		if c.HasCounters {
			b = appendRuleCounters(b, c.Counters)
		}
		b = append(b, c.Kind...)
		if c.Chain != "" {
			b = append(b, ' ')
			b = append(b, c.Chain...)
		}
		if c.Num > 0 {
			b = append(b, ' ')
			b = append(b, fmt.Sprint(c.Num)...)
		}
		switch c.Kind {
		case KindPolicy:
			b = append(b, ' ')
			b = append(b, c.Policy...)
		case KindRename:
			b = append(b, ' ')
			b = append(b, c.NewName...)
		}
		if c.Rule != nil {
			if c.Rule.Text != "" {
				b = append(b, ' ')
				b = append(b, c.Rule.Text...)
			} else {
				b = AppendRule(b, c.Rule, fam)
			}
		}
	}
	return append(b, '\n')
}

// NormalizeOptions configure Normalize.
type NormalizeOptions struct {
	// Family of the input; default IPv4.
	Family nf.Family
	// Write configures the output (Style is forced to StyleSave).
	Write WriteOptions
}

// Normalize answers "what does iptables-save show after this iptables-restore input": it
// restores input onto an empty ruleset with --noflush and prints the result as StyleSave.
func Normalize(input []byte, opts NormalizeOptions) ([]byte, error) {
	fam := opts.Family
	if fam == "" {
		fam = nf.IPv4
	}
	rs := &nf.Ruleset{Family: fam}
	if err := restoreString(rs, string(input), "input", RestoreOptions{NoFlush: true}); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	wo := opts.Write
	wo.Style = StyleSave
	if err := Write(&out, rs, wo); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
