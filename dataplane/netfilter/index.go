package netfilter

type chainIndex struct{}

func (ci *chainIndex) next(i int, p *Packet) int { return i }

// Indexed returns an evaluator over the same rules that uses dispatch indexes.
func (ev *Evaluator) Indexed() *Evaluator { c := *ev; c.indexed = true; return &c }
