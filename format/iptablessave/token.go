package iptablessave

import (
	"errors"
	"strings"
)

// errUnterminatedQuote is returned for a line whose quote is never closed.
var errUnterminatedQuote = errors.New("unterminated quoted string")

// tokenize splits one line into words the way iptables-restore does (xtables-restore's
// add_param_to_argv): words are separated by spaces, tabs or newlines; a `"` opens a quoted
// part in which a backslash escapes the next character, and the closing `"` ends the word
// (so `ab"c d"e` is the two words `abc d` and `e`). It appends to toks and cols (the 1-based
// column where each word starts; the word's source text is line[cols[i]-1:ends[i]]) and
// reuses their storage; words are substrings of line unless they needed unescaping.
func tokenize(line string, toks []string, cols []int) ([]string, []int, error) {
	toks, cols, _, err := tokenizeEnds(line, toks, cols, nil)
	return toks, cols, err
}

func tokenizeEnds(line string, toks []string, cols, ends []int) ([]string, []int, []int, error) {
	toks, cols, ends = toks[:0], cols[:0], ends[:0]
	i, n := 0, len(line)
	for i < n {
		c := line[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
			continue
		}
		start := i
		// Fast path: a plain word.
		j := i
		for j < n && line[j] != ' ' && line[j] != '\t' && line[j] != '\n' && line[j] != '\r' && line[j] != '"' {
			j++
		}
		if j == n || line[j] != '"' {
			toks = append(toks, line[i:j])
			cols = append(cols, start+1)
			ends = append(ends, j)
			i = j
			continue
		}
		// Quoted word. Fast path: `"..."` from the word start with no backslash.
		if j == i {
			k := strings.IndexAny(line[i+1:], "\"\\")
			if k >= 0 && line[i+1+k] == '"' {
				toks = append(toks, line[i+1:i+1+k])
				cols = append(cols, start+1)
				i = i + 1 + k + 1
				ends = append(ends, i)
				continue
			}
		}
		var b strings.Builder
		b.WriteString(line[i:j])
		i = j + 1 // past the opening quote
		closed := false
		for i < n {
			c := line[i]
			if c == '\\' && i+1 < n {
				b.WriteByte(line[i+1])
				i += 2
				continue
			}
			if c == '"' {
				closed = true
				i++
				break
			}
			b.WriteByte(c)
			i++
		}
		if !closed {
			return toks, cols, ends, errUnterminatedQuote
		}
		toks = append(toks, b.String())
		cols = append(cols, start+1)
		ends = append(ends, i)
	}
	return toks, cols, ends, nil
}

// noQuoteChars are the characters xtables_save_string prints without quoting.
func noQuote(c byte) bool {
	return c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// appendSaveString appends " VALUE" exactly as libxtables' xtables_save_string prints it:
// bare when VALUE is non-empty and only [_-0-9a-zA-Z], else double-quoted with `"`, `\` and
// `'` backslash-escaped.
func appendSaveString(b []byte, v string) []byte {
	plain := len(v) > 0
	for i := 0; i < len(v); i++ {
		if !noQuote(v[i]) {
			plain = false
			break
		}
	}
	b = append(b, ' ')
	if plain {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' || c == '\'' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

// appendWord appends " WORD": a word kept as written in the source (quotes included) is
// printed as is; other words are quoted only if iptables-restore would otherwise split them.
func appendWord(b []byte, w string) []byte {
	b = append(b, ' ')
	if w != "" && (!strings.ContainsAny(w, " \t\"\\\n") || (len(w) >= 2 && w[0] == '"' && w[len(w)-1] == '"')) {
		return append(b, w...)
	}
	b = append(b, '"')
	for i := 0; i < len(w); i++ {
		if w[i] == '"' || w[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, w[i])
	}
	return append(b, '"')
}
