package workflows

// The ledger of every workflow.GetVersion change id of DunningWorkflow, oldest first. A run
// records the version of each change when it first reaches it; a run recorded before a
// change replays the old code path. Rules: never reuse or rename an id; a new change gets a
// new id here with what it changes; an id whose runs have all closed (past retention) may
// have its old path removed, keeping the GetVersion call with its minimum raised.
const (
	// ChangeDecisionSearchAttributes: upsert PromptVersion and DecidedBy after each decision.
	ChangeDecisionSearchAttributes = "decision-search-attributes"
	// ChangeSendsTaskQueue: sends run on the per-provider task queues (rate limits).
	ChangeSendsTaskQueue = "sends-task-queue"
	// ChangeLocalDBReads (localreads.go): PlanRun, FetchCustomerHistory as local activities;
	// implies the two changes above without their own markers.
	// ChangeSpikeHold ("spike-hold"): version 1 checks for a failure-spike incident before the
	// first message as an activity, version 2 as a local activity.
	ChangeSpikeHold = "spike-hold"
	// ChangeSettleAnyTime: a settling event (recovered, retry success, cancel) applies
	// whatever its occurred_at; only failures can be stale. Runs recorded before it ignored a
	// settle older than the newest applied failure.
	ChangeSettleAnyTime = "settle-any-time"
	// ChangeSpikeNormalize (SpikeDetectorWorkflow): the detector judges each cohort by its
	// failure rate where payment volume is reported, otherwise by its share of all failures
	// (spike.Config.Normalize), so a traffic-wide rise is not an incident. Detector runs
	// recorded before it replay the count model.
	ChangeSpikeNormalize = "spike-normalize"
)
