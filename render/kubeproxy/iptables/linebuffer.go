package iptables

import "bytes"

// lineBuffer is proxyutil.LineBuffer: words joined by single spaces, one line per write.
// A discarding buffer (upstream NewDiscardLineBuffer) only counts lines.
type lineBuffer struct {
	b       bytes.Buffer
	lines   int
	discard bool
	started bool
}

func (l *lineBuffer) write(words ...string) {
	l.lines++
	if l.discard {
		return
	}
	for i, w := range words {
		if i > 0 {
			l.b.WriteByte(' ')
		}
		l.b.WriteString(w)
	}
	l.b.WriteByte('\n')
}

// writeArgs writes the concatenation of groups as one line.
func (l *lineBuffer) writeArgs(groups ...[]string) {
	l.lines++
	if l.discard {
		return
	}
	first := true
	for _, g := range groups {
		for _, w := range g {
			if !first {
				l.b.WriteByte(' ')
			}
			first = false
			l.b.WriteString(w)
		}
	}
	l.b.WriteByte('\n')
}

func (l *lineBuffer) chainLine(chain string) {
	l.lines++
	if l.discard {
		return
	}
	l.b.WriteByte(':')
	l.b.WriteString(chain)
	l.b.WriteString(" - [0:0]\n")
}

// begin/words/quoted/end build one line piecewise without intermediate allocations.
func (l *lineBuffer) begin(words ...string) {
	l.started = false
	l.words(words...)
}

func (l *lineBuffer) words(words ...string) {
	if l.discard {
		return
	}
	for _, w := range words {
		if l.started {
			l.b.WriteByte(' ')
		}
		l.started = true
		l.b.WriteString(w)
	}
}

// quoted writes one word made of parts, inside double quotes.
func (l *lineBuffer) quoted(parts ...string) {
	if l.discard {
		return
	}
	if l.started {
		l.b.WriteByte(' ')
	}
	l.started = true
	l.b.WriteByte('"')
	for _, p := range parts {
		l.b.WriteString(p)
	}
	l.b.WriteByte('"')
}

func (l *lineBuffer) end() {
	l.lines++
	l.started = false
	if l.discard {
		return
	}
	l.b.WriteByte('\n')
}
