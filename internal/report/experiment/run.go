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

	// Arms.
	//
	// Holdout is the run's holdout arm: "treatment", "control" or "control:<treatment>" (the
	// control treatment of policy.yaml's holdout section, e.g. "control:no_messages"), or ""
	// for runs started while the holdout was off. Every value that starts with "control" is a
	// control arm; different control treatments are different arms (each compared with the
	// treatment arm in its own experiment), never pooled.
	//
	// Variant is the prompt variant ("" when none: runs before the variant experiment, or whose
	// steps recorded none). Runs without a variant are not in the variant experiment.
	//
	// DecidedBy places the run in the model-against-rules comparison. It is taken from the
	// run's first decision at which the model was asked and answered (a reply or a refusal
	// recorded in decisions.inputs: model_answer or model_refusal; or decided_by 'llm'):
	//   "llm"   the model's answer was used (decisions.decided_by = 'llm');
	//   "rules" the model answered but its answer was not used (it refused, broke the schema
	//           or the policy), so the rules decided;
	//   ""      the model was never asked and answered in the run: holdout control, no
	//           reachable channel, over the contact cap, a decline class that waits, no model
	//           configured, the model call failed (outage), or a decision recorded before
	//           decisions.inputs existed with decided_by 'rules' (unknown).
	// Runs with "" are not in the comparison: a run the model was never asked is not a run
	// the rules won, and those runs (unreachable, capped, waiting) recover least. The
	// comparison is observational (not randomised): the rules arm is the runs whose model
	// answer was refused, which may differ from the others.
	//
	// Segment is the plan ("" when unknown) for per-segment comparisons.
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
