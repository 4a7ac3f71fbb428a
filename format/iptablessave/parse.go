package iptablessave

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unsafe"

	nf "github.com/knet-dev/knet/dataplane/netfilter"
)

// Diagnostic reports something a tolerant parse did not understand and kept verbatim.
type Diagnostic struct {
	File    string
	Line    int
	Col     int // 1-based; 0 when the whole line is meant
	Message string
}

// String formats the diagnostic as `file:line:col: message`.
func (d Diagnostic) String() string {
	if d.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Message)
	}
	return fmt.Sprintf("%s:%d: %s", d.File, d.Line, d.Message)
}

// Error is a parse or restore error at one line of the input.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
	// Err is the underlying error, if any (e.g. netfilter.ErrChainInUse).
	Err error
}

func (e *Error) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// CommandKind is the kind of one line of iptables-restore input; the values are the line's
// leading token.
type CommandKind string

// Command kinds.
const (
	KindComment     CommandKind = "#"
	KindBlank       CommandKind = ""
	KindTable       CommandKind = "*"
	KindChain       CommandKind = ":"
	KindCommit      CommandKind = "COMMIT"
	KindAppend      CommandKind = "-A"
	KindInsert      CommandKind = "-I"
	KindDelete      CommandKind = "-D"
	KindReplace     CommandKind = "-R"
	KindNewChain    CommandKind = "-N"
	KindDeleteChain CommandKind = "-X"
	KindFlush       CommandKind = "-F"
	KindZero        CommandKind = "-Z"
	KindPolicy      CommandKind = "-P"
	KindRename      CommandKind = "-E"
)

// Command is one line of iptables-restore input.
type Command struct {
	Kind CommandKind
	Line int
	// Text is the line as read (comments and blank lines are printed back from it).
	Text string
	// Table is the table of a KindTable line.
	Table nf.TableName
	// Chain is the chain the command names (empty for `-F`, `-X`, `-Z` on every chain).
	Chain string
	// Policy and Counters are the values of a `:CHAIN POLICY [p:b]` line or `-P`.
	Policy   nf.Policy
	Counters nf.Counters
	// Num is the rule number of -I/-D/-R (0 when absent).
	Num int
	// NewName is the new name of a `-E` rename.
	NewName string
	// Rule is the rule of -A/-I/-D/-R (nil for `-D CHAIN NUM`).
	Rule *nf.Rule
	// HasCounters reports a `[p:b]` prefix on a rule line.
	HasCounters bool
	// Decls is, for a KindTable line, the number of chain declarations in its block (a
	// sizing hint).
	Decls int
}

// scanner reads restore-format input line by line and turns each line into a Command.
type scanner struct {
	file   string
	data   string
	pos    int
	line   int
	rp     ruleParser
	toks   []string
	cols   []int
	ends   []int
	diags  []Diagnostic
	strict bool
	// slab allocation of rules and their match slices.
	rules   []nf.Rule
	matches []nf.Match
	scratch []nf.Match
}

func newScanner(data string, file string, fam nf.Family, strict bool) *scanner {
	s := &scanner{file: file, data: data, strict: strict}
	s.rp.fam = fam
	s.rp.strict = strict
	return s
}

// DetectFamily guesses the address family of a dump or restore input: IPv6 if it carries
// an ip6tables-save header or if its first `-s`/`-d`/`--to-destination` address is IPv6.
func DetectFamily(data []byte) nf.Family { return detectFamily(string(data)) }

func detectFamily(data string) nf.Family {
	head := data
	if len(head) > 4096 {
		head = head[:4096]
	}
	if strings.Contains(head, "ip6tables") {
		return nf.IPv6
	}
	for _, key := range []string{" -s ", " -d ", "--to-destination "} {
		if i := strings.Index(data, key); i >= 0 {
			rest := data[i+len(key):]
			if j := strings.IndexAny(rest, " \n"); j >= 0 {
				rest = rest[:j]
			}
			rest = strings.TrimLeft(rest, "[")
			if strings.Contains(rest, ":") && !strings.Contains(rest, ".") {
				return nf.IPv6
			}
			return nf.IPv4
		}
	}
	return nf.IPv4
}

func (s *scanner) errf(col int, format string, args ...any) *Error {
	return &Error{File: s.file, Line: s.line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// next returns the next command, or io.EOF.
func (s *scanner) next(cmd *Command) error {
	if s.pos >= len(s.data) {
		return io.EOF
	}
	end := strings.IndexByte(s.data[s.pos:], '\n')
	var line string
	if end < 0 {
		line = s.data[s.pos:]
		s.pos = len(s.data)
	} else {
		line = s.data[s.pos : s.pos+end]
		s.pos += end + 1
	}
	s.line++
	line = strings.TrimSuffix(line, "\r")
	*cmd = Command{Line: s.line, Text: line}
	trimmed := line
	if len(trimmed) > 0 && (trimmed[0] == ' ' || trimmed[0] == '\t') {
		trimmed = strings.TrimLeft(line, " \t")
	}
	switch {
	case trimmed == "":
		cmd.Kind = KindBlank
		return nil
	case trimmed[0] == '-' || trimmed[0] == '[':
		return s.commandLine(cmd, line)
	case trimmed[0] == '#':
		cmd.Kind = KindComment
		return nil
	case trimmed[0] == '*':
		cmd.Kind = KindTable
		name := strings.TrimSpace(trimmed[1:])
		cmd.Table = nf.TableName(name)
		if !cmd.Table.Valid() {
			return s.errf(0, "table name '%s' invalid", name)
		}
		block := s.data[s.pos:]
		if end := strings.Index(block, "\nCOMMIT"); end >= 0 {
			block = block[:end]
		}
		cmd.Decls = strings.Count(block, "\n:")
		if strings.HasPrefix(block, ":") {
			cmd.Decls++
		}
		return nil
	case trimmed[0] == ':':
		return s.chainLine(cmd, trimmed)
	case strings.TrimSpace(trimmed) == "COMMIT":
		cmd.Kind = KindCommit
		return nil
	}
	return s.commandLine(cmd, line)
}

// chainLine parses `:NAME POLICY [packets:bytes]`.
func (s *scanner) chainLine(cmd *Command, line string) error {
	cmd.Kind = KindChain
	var err error
	s.toks, s.cols, err = tokenize(line[1:], s.toks, s.cols)
	if err != nil || len(s.toks) < 2 {
		return s.errf(0, "malformed chain declaration %q (want :NAME POLICY [packets:bytes])", line)
	}
	cmd.Chain = s.toks[0]
	if len(cmd.Chain) > 28 {
		return s.errf(2, "chain name `%s' too long (must be under 29 chars)", cmd.Chain)
	}
	switch pol := nf.Policy(s.toks[1]); pol {
	case nf.PolicyAccept, nf.PolicyDrop, nf.PolicyNone:
		cmd.Policy = pol
	default:
		return s.errf(0, "bad policy %q for chain %s", s.toks[1], cmd.Chain)
	}
	if len(s.toks) >= 3 {
		c, ok := parseCounters(s.toks[2])
		if !ok {
			return s.errf(0, "bad counters %q for chain %s", s.toks[2], cmd.Chain)
		}
		cmd.Counters = c
	}
	if len(s.toks) > 3 {
		return s.errf(0, "unexpected %q after chain declaration", s.toks[3])
	}
	return nil
}

// parseCounters parses "[packets:bytes]".
func parseCounters(w string) (nf.Counters, bool) {
	if len(w) < 5 || w[0] != '[' || w[len(w)-1] != ']' {
		return nf.Counters{}, false
	}
	a, b, ok := strings.Cut(w[1:len(w)-1], ":")
	if !ok {
		return nf.Counters{}, false
	}
	p, e1 := strconv.ParseUint(a, 10, 64)
	q, e2 := strconv.ParseUint(b, 10, 64)
	if e1 != nil || e2 != nil {
		return nf.Counters{}, false
	}
	return nf.Counters{Packets: p, Bytes: q}, true
}

// commandLine parses a `[p:b] -A CHAIN rule...` style line.
func (s *scanner) commandLine(cmd *Command, line string) error {
	var err error
	s.toks, s.cols, s.ends, err = tokenizeEnds(line, s.toks, s.cols, s.ends)
	if err != nil {
		return s.errf(0, "%v", err)
	}
	toks, cols, ends := s.toks, s.cols, s.ends
	if len(toks) > 0 && strings.HasPrefix(toks[0], "[") {
		c, ok := parseCounters(toks[0])
		if !ok {
			return s.errf(cols[0], "bad counters %q", toks[0])
		}
		cmd.Counters, cmd.HasCounters = c, true
		toks, cols, ends = toks[1:], cols[1:], ends[1:]
	}
	if len(toks) == 0 {
		return s.errf(0, "empty command")
	}
	op := toks[0]
	switch op {
	case "-A", "--append":
		cmd.Kind = KindAppend
	case "-I", "--insert":
		cmd.Kind = KindInsert
	case "-D", "--delete":
		cmd.Kind = KindDelete
	case "-R", "--replace":
		cmd.Kind = KindReplace
	case "-N", "--new-chain", "--new":
		cmd.Kind = KindNewChain
	case "-X", "--delete-chain":
		cmd.Kind = KindDeleteChain
	case "-F", "--flush":
		cmd.Kind = KindFlush
	case "-Z", "--zero":
		cmd.Kind = KindZero
	case "-P", "--policy":
		cmd.Kind = KindPolicy
	case "-E", "--rename-chain":
		cmd.Kind = KindRename
	case "-t", "--table":
		return s.errf(cols[0], "the -t option cannot be used in iptables-restore")
	default:
		return s.errf(cols[0], "unknown command %q (want -A, -I, -D, -R, -N, -X, -F, -Z, -P, -E, a :CHAIN declaration, *TABLE or COMMIT)", op)
	}
	args, acols, aends := toks[1:], cols[1:], ends[1:]
	needChain := cmd.Kind != KindFlush && cmd.Kind != KindZero && cmd.Kind != KindDeleteChain
	if len(args) == 0 || strings.HasPrefix(args[0], "-") || args[0] == "!" {
		if needChain {
			return s.errf(cols[0], "%s requires a chain name", op)
		}
		if len(args) > 0 {
			return s.errf(acols[0], "unexpected %q", args[0])
		}
		return nil
	}
	cmd.Chain = args[0]
	args, acols, aends = args[1:], acols[1:], aends[1:]
	switch cmd.Kind {
	case KindNewChain, KindDeleteChain, KindFlush, KindZero:
		if len(args) > 0 {
			return s.errf(acols[0], "unexpected %q after %s %s", args[0], op, cmd.Chain)
		}
		return nil
	case KindPolicy:
		if len(args) != 1 {
			return s.errf(cols[0], "-P requires a chain and a policy")
		}
		switch pol := nf.Policy(args[0]); pol {
		case nf.PolicyAccept, nf.PolicyDrop:
			cmd.Policy = pol
		default:
			return s.errf(acols[0], "bad policy name %q", args[0])
		}
		return nil
	case KindRename:
		if len(args) != 1 {
			return s.errf(cols[0], "-E requires old and new chain names")
		}
		cmd.NewName = args[0]
		return nil
	}
	// Rule number for -I (optional), -D (alone), -R (required).
	if len(args) > 0 && isNumber(args[0]) {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 {
			return s.errf(acols[0], "invalid rule number `%s'", args[0])
		}
		if cmd.Kind == KindAppend {
			return s.errf(acols[0], "-A does not take a rule number")
		}
		cmd.Num = n
		args, acols, aends = args[1:], acols[1:], aends[1:]
		if cmd.Kind == KindDelete {
			if len(args) > 0 {
				return s.errf(acols[0], "unexpected %q after -D %s %d", args[0], cmd.Chain, n)
			}
			return nil
		}
	} else if cmd.Kind == KindReplace {
		return s.errf(cols[0], "-R requires a rule number")
	}
	r := s.newRule()
	r.Line = s.line
	r.Counters = cmd.Counters
	if len(args) > 0 {
		r.Text = line[acols[0]-1:]
		r.Text = strings.TrimRight(r.Text, " \t\r")
	}
	r.Matches = s.scratch[:0]
	if err := s.rp.parse(r, line, args, acols, aends); err != nil {
		var ae *argError
		if errors.As(err, &ae) {
			return s.errf(ae.col, "%s", ae.msg)
		}
		return s.errf(0, "%v", err)
	}
	s.scratch = r.Matches[:0]
	r.Matches = s.keepMatches(r.Matches)
	for _, n := range s.rp.notes {
		s.diags = append(s.diags, Diagnostic{File: s.file, Line: s.line, Col: n.col, Message: n.msg})
	}
	cmd.Rule = r
	return nil
}

func isNumber(w string) bool {
	if w == "" {
		return false
	}
	for i := 0; i < len(w); i++ {
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return true
}

// newRule hands out a zeroed rule from a slab.
func (s *scanner) newRule() *nf.Rule {
	if len(s.rules) == cap(s.rules) {
		s.rules = make([]nf.Rule, 0, 512)
	}
	s.rules = s.rules[:len(s.rules)+1]
	return &s.rules[len(s.rules)-1]
}

// keepMatches copies a rule's matches into a slab with the capacity capped, so the rule owns
// them without a per-rule allocation.
func (s *scanner) keepMatches(ms []nf.Match) []nf.Match {
	if len(ms) == 0 {
		return nil
	}
	if cap(s.matches)-len(s.matches) < len(ms) {
		s.matches = make([]nf.Match, 0, max(2048, len(ms)))
	}
	start := len(s.matches)
	s.matches = append(s.matches, ms...)
	return s.matches[start:len(s.matches):len(s.matches)]
}

// readAll reads r into a string without the copy bytes.Buffer.String would make: the
// buffer is never written again, and rules keep substrings of it (names, comments, Text)
// instead of copies.
func readAll(r io.Reader) (string, error) {
	var buf bytes.Buffer
	if l, ok := r.(interface{ Len() int }); ok {
		buf.Grow(l.Len() + 1)
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return "", err
	}
	b := buf.Bytes()
	if len(b) == 0 {
		return "", nil
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}
