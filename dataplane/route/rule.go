package route

import "net/netip"

// RuleAction is what a policy rule does (FR_ACT_*), spelled as `ip rule` prints it.
type RuleAction string

// Rule actions.
const (
	ActionLookup      RuleAction = "lookup"
	ActionGoto        RuleAction = "goto"
	ActionNop         RuleAction = "nop"
	ActionBlackhole   RuleAction = "blackhole"
	ActionUnreachable RuleAction = "unreachable"
	ActionProhibit    RuleAction = "prohibit"
)

// Rule is one policy routing rule (netlink.Rule with netip).
type Rule struct {
	Priority int
	// Not inverts the selector (`not from ...`).
	Not bool
	// Src and Dst select by prefix; invalid means "all" / no `to`.
	Src, Dst netip.Prefix
	// Mark and Mask select by fwmark when HasMark (`fwmark 0x4000/0x4000`).
	Mark, Mask uint32
	HasMark    bool
	IIF, OIF   string
	Action     RuleAction
	// Table is the table looked up for ActionLookup.
	Table TableID
	// Goto is the target priority of ActionGoto.
	Goto int
}
