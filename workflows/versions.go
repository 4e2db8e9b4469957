package workflows

import "go.temporal.io/sdk/workflow"

// The ledger of every workflow.GetVersion change id of both workflows (per workflow, oldest
// first): the single place where a change id is declared. A workflow passes only these
// constants to GetVersion (versions_test.go fails otherwise). A run records the version of each change
// when it first reaches it; a run recorded before a change replays the old code path.
//
// Rules:
//   - Never reuse or rename an id; a new change gets a new constant here (and an entry in
//     ledger) saying what it changes and where its GetVersion call must stand.
//   - A change that alters the commands a workflow emits (activities, timers, markers,
//     search-attribute upserts, child workflows, continue-as-new) is gated by GetVersion; a
//     refactor that emits the same commands needs none: the replay tests over the recorded
//     histories in testdata prove it.
//   - A GetVersion call is itself a command (a marker): moving it before or after another
//     command breaks the replay of the runs recorded with it.
//   - An id whose runs have all closed (past retention) may have its old path removed,
//     keeping the GetVersion call with its minimum raised.
const (
	// ChangeDecisionSearchAttributes (DunningWorkflow): upsert PromptVersion and DecidedBy
	// after each decision. Order: checked after each decision, before the send (see
	// changed: skipped for runs with ChangeLocalDBReads).
	ChangeDecisionSearchAttributes = "decision-search-attributes"
	// ChangeSendsTaskQueue (DunningWorkflow): sends run on the per-provider task queues
	// (rate limits). Order: checked before each send (see changed: skipped for runs with
	// ChangeLocalDBReads).
	ChangeSendsTaskQueue = "sends-task-queue"
	// ChangeLocalDBReads (DunningWorkflow, localreads.go): PlanRun and FetchCustomerHistory
	// run as local activities. Order: first checked at the run's first activity (PlanRun);
	// it implies ChangeDecisionSearchAttributes and ChangeSendsTaskQueue, whose GetVersion
	// calls (and markers) a run with it skips.
	ChangeLocalDBReads = "local-db-reads"
	// ChangeSpikeHold (DunningWorkflow, hold.go): version 1 checks for a failure-spike
	// incident before the first message as an activity, version 2 as a local activity.
	// Order: at step 1, before the customer's history is fetched.
	ChangeSpikeHold = "spike-hold"
	// ChangeSettleAnyTime (DunningWorkflow): a settling event (recovered, retry success,
	// cancel) applies whatever its occurred_at; only failures can be stale. Runs recorded
	// before it ignored a settle older than the newest applied failure. Order: in setup,
	// before any command, and only for a run not continued as new (a continued run always
	// has it).
	ChangeSettleAnyTime = "settle-any-time"
	// DetectorHoldsEnd (SpikeDetectorWorkflow): the detector recovers open incidents from
	// PostgreSQL when it starts over, stores an operator's action before applying it, keeps
	// the incidents it maintains live (postgres.HoldIfIncident), and stores, releases and
	// alerts in separate activities: releasing held runs never waits for alerts. Order: the
	// detector's first command; DefaultVersion runs legacyDetector.
	DetectorHoldsEnd = "detector-holds-end"
	// ChangeSpikeNormalize (SpikeDetectorWorkflow): the detector judges each cohort by its
	// failure rate where payment volume is reported, otherwise by its share of all failures
	// (spike.Config.Normalize), so a traffic-wide rise is not an incident. Detector runs
	// recorded before it replay the count model. Order: right after the SpikeConfig
	// activity, before the incidents are recovered.
	ChangeSpikeNormalize = "spike-normalize"
	// ChangeReconcileResend (DunningWorkflow, step.go awaitEvidence): a send whose outcome is
	// unknown (reconcile) waits for its reconcile window, then asks the send activity again
	// with Resend: settled from the provider's events, or — none named it, so the provider
	// never accepted it — sent once more under recoup.ResendKey. Order: right after the
	// send's outcome is recorded, only for a reconcile outcome carrying ReconcileAt (checked
	// directly, not through changed: runs with ChangeLocalDBReads recorded before it kept
	// their reconcile outcome).
	ChangeReconcileResend = "reconcile-resend"
	// ChangeReplies (DunningWorkflow, replies.go): a customer's reply (SignalReply) is
	// classified by the ClassifyReply activity and the rules' action applied (a pause until
	// the day after a promise, billing asked to verify a payment, needs_attention, the
	// hardship extension). Runs recorded before it only record the reply. Order: in the
	// reply goroutine, before the first ClassifyReply of the run (its first reply).
	ChangeReplies = "replies"
	// ChangePauseOrder (DunningWorkflow, signals.go receive): a pause signal dated before a
	// resume signal already received (applied, or refused because the run was not paused
	// yet) is stale and ignored, instead of pausing the run until a resume that already
	// came. Order: checked in the pause signal's handler, only when such a pause arrives.
	ChangePauseOrder = "pause-order"
	// ChangeApprovals (DunningWorkflow, approvals.go awaitApproval): a decision the approval
	// policy holds (Decision.Approval) waits for support's approve, reject or edit (an edit
	// is checked by the CheckApprovalEdit activity) or for its timeout (a timer, canceled
	// while paused and started again for the time left), with status awaiting_approval; the
	// outcome is released by the ReleaseHeldMessage activity and the time held moves later
	// steps back (approvals never shipped before these, so they are part of this change;
	// testdata/approvals_edited_rejected.json was recorded again). Runs recorded before it
	// sent such a decision at once. Order: after
	// the decision's search attributes, before the delivery, only for a decision carrying
	// an approval request.
	ChangeApprovals = "approvals"
	// ChangeRetryAdvice (DunningWorkflow, retryadvice.go startRetryAdvice): every failure the
	// run applies (the first included) is advised on by the AdviseRetry activity, which sends
	// billing dunning.retry_advice. Runs recorded before it advise nothing. Order: in the
	// advice goroutine, before the run's first AdviseRetry (at its first failure, i.e. at the
	// start of a new run, before the first step's wait).
	ChangeRetryAdvice = "retry-advice"
	// ChangeCardUpdate (DunningWorkflow, retryadvice.go startRetryAdvice): billing's
	// payment_method.updated with retry_requested is advised on at once (AdviseRetry, webhook
	// keyed by the update's event id). Runs recorded before it never got the signal. Order: in
	// the advice goroutine, before the AdviseRetry of the first such update.
	ChangeCardUpdate = "card-update"
	// ChangeActOnFailedRetry (DunningWorkflow, step.go onRetryFailure, wait.go waitUntil): a
	// step that sent nothing because the decline class waits for a failed retry
	// (after_failed_retry) is followed at once by the next step when a retry fails (a
	// payment.retry_failed or later payment.failed), instead of at the step's time. Runs
	// recorded before it wait for the time. Order: in the signal handler of that failure,
	// after the run recorded the failure, before the wait's timer is cancelled.
	ChangeActOnFailedRetry = "act-on-failed-retry"
	// ChangeLeanRun (DunningWorkflow, localreads.go leanRun): fewer billable Actions and less
	// server work per run. A run with it takes every earlier DunningWorkflow change at the
	// version leanImplies names without their GetVersion calls (no marker and no
	// TemporalChangeVersion upsert each); DecideStrategy and AdviseRetry run as local
	// activities; a run started with its search attributes (the ingest's SignalWithStart)
	// does not upsert them again in setup; and a step's DunningStep goes in the same upsert
	// as the step's decision (PromptVersion, DecidedBy) or its next status change. Order: in
	// setup, before any other command (before ChangeSettleAnyTime), for every run (continued
	// runs included).
	ChangeLeanRun = "lean-run"
)

// leanImplies is the version a run with ChangeLeanRun takes of each change before it,
// without asking GetVersion (see version). Frozen: a later version of one of these changes
// needs a change id of its own, or runs recorded with lean-run would replay the new code.
var leanImplies = map[string]workflow.Version{
	ChangeDecisionSearchAttributes: 1, ChangeSendsTaskQueue: 1, ChangeLocalDBReads: 1, ChangeSpikeHold: 2,
	ChangeSettleAnyTime: 1, ChangeReconcileResend: 1, ChangeReplies: 1, ChangePauseOrder: 1,
	ChangeApprovals: 1, ChangeRetryAdvice: 1, ChangeCardUpdate: 1, ChangeActOnFailedRetry: 1,
}

// ledger lists every change id above, oldest first, with the workflow it belongs to.
var ledger = []struct{ ID, Workflow string }{
	{ChangeDecisionSearchAttributes, "DunningWorkflow"},
	{ChangeSendsTaskQueue, "DunningWorkflow"},
	{ChangeLocalDBReads, "DunningWorkflow"},
	{ChangeSpikeHold, "DunningWorkflow"},
	{ChangeSettleAnyTime, "DunningWorkflow"},
	{DetectorHoldsEnd, "SpikeDetectorWorkflow"},
	{ChangeSpikeNormalize, "SpikeDetectorWorkflow"},
	{ChangeReconcileResend, "DunningWorkflow"},
	{ChangeReplies, "DunningWorkflow"},
	{ChangePauseOrder, "DunningWorkflow"},
	{ChangeApprovals, "DunningWorkflow"},
	{ChangeRetryAdvice, "DunningWorkflow"},
	{ChangeCardUpdate, "DunningWorkflow"},
	{ChangeActOnFailedRetry, "DunningWorkflow"},
	{ChangeLeanRun, "DunningWorkflow"},
}
