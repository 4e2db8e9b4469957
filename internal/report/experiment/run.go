// Package experiment compares the arms of Recoup's experiments (the holdout, prompt
// variants, model against rules): recovery rate and recovered amount per arm within a fixed
// attribution window, with confidence intervals, a significance test and a plain verdict.
// It is pure: the runs come from PostgreSQL through internal/report.
package experiment

import "time"

// How a recovered run was recovered (Run.Attribution). A run that was not recovered within
// the window has AttributionNone.
const (
	AttributionNone          = ""
	AttributionBeforeMessage = "before_message" // paid before any message was sent
	AttributionBillingRetry  = "billing_retry"  // billing's own retry succeeded (payment.retry_succeeded)
	AttributionAfterMessage  = "after_message"  // paid after a message (AttributedStep, AttributedChannel)
	AttributionAfterClick    = "after_click"    // paid after the payment link in a message was clicked
	AttributionSupport       = "support"        // support settled it (mark paid, or an approval/edit path)
)

// Run is one dunning episode as the analysis sees it: which arm of which experiment it was
// in, and what happened within the attribution window that starts at StartedAt.
type Run struct {
	WorkflowID string
	InvoiceID  string
	StartedAt  time.Time

	// Arms: the holdout arm — "treatment", or the control arm named by its control
	// treatment: "control:rules_plain" or "control:no_messages" ("control" alone for a
	// control run recorded without a treatment); a run is in the control arm exactly when
	// Holdout is "control" or starts with "control:"; "" for runs started while the holdout
	// was off or before it existed — the prompt variant ("" when none), who made the first
	// decision ("llm", "rules", or "" when no decision was made or the first decision sent
	// nothing, so the model was not asked), and a segment (the plan, or "" when unknown) for
	// per-segment comparisons. internal/report.ExperimentRuns fills them.
	Holdout   string
	Variant   string
	DecidedBy string
	Segment   string

	Currency       string // ISO 4217
	AmountDueMinor int64  // the invoice's amount, in minor units of Currency

	// Outcome within the window: Recovered, or Lost (canceled subscription, exhausted,
	// failed, terminated), or neither (still open when the window ends or the report runs).
	Recovered            bool
	Lost                 bool
	RecoveredAt          time.Time     // zero unless Recovered
	TimeToRecover        time.Duration // RecoveredAt - StartedAt
	RecoveredAmountMinor int64         // what was paid, in minor units of Currency
	IncentiveCostMinor   int64         // discount given away by this run (0 for extensions)

	Attribution       string // one of the Attribution constants
	AttributedStep    int    // the step whose message preceded the payment (after_message, after_click)
	AttributedChannel string // "email" or "sms" (after_message, after_click)
	MessagesSent      int    // messages sent before the recovery (or in total, if not recovered)
}
