package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// dbLocalActivity: the same timeouts and retries as dbActivity (no overall limit: an outage
// of any length delays the run, never fails it). A local activity retried for longer than a
// workflow task keeps the task alive with heartbeats; a backoff longer than a minute
// becomes a timer.
var dbLocalActivity = workflow.LocalActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
	},
}

// decideLocalActivity: DecideStrategy as a local activity (runs with "lean-run"). Its calls
// (the model, bounded by the client's HTTP timeout; PostgreSQL) are bounded, so a local
// activity is safe: it keeps decideActivity's timeout and retries, and the decision is stored
// under the step's key whatever attempt answers.
var decideLocalActivity = workflow.LocalActivityOptions{
	StartToCloseTimeout: decideActivity.StartToCloseTimeout,
	RetryPolicy:         decideActivity.RetryPolicy,
}

// leanRun reports whether this run takes the "lean-run" change. Its first call, in setup
// before any other command, records the version; later calls return it.
func leanRun(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, ChangeLeanRun, workflow.DefaultVersion, 1) >= 1
}

// version is workflow.GetVersion(ctx, changeID, DefaultVersion, maxSupported) for a change
// that "lean-run" implies: a run with lean-run takes the version leanImplies names without a
// GetVersion call (no marker, no TemporalChangeVersion upsert).
func version(ctx workflow.Context, changeID string, maxSupported workflow.Version) workflow.Version {
	if v, ok := leanImplies[changeID]; ok && leanRun(ctx) {
		return v
	}
	return workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, maxSupported)
}

// localDBReads reports whether this run takes the "local-db-reads" change. Its first call,
// at the run's first activity (PlanRun), records the version; later calls return it.
func localDBReads(ctx workflow.Context) bool {
	return version(ctx, ChangeLocalDBReads, 1) >= 1
}

// dbCall runs a short PostgreSQL activity: a local activity for runs with the
// "local-db-reads" change, a regular activity (dbActivity) for runs recorded before it.
func dbCall(ctx workflow.Context, summary string, activity, in any) workflow.Future {
	if localDBReads(ctx) {
		opts := dbLocalActivity
		opts.Summary = summary
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), activity, in)
	}
	return workflow.ExecuteActivity(withSummary(ctx, dbActivity, summary), activity, in)
}

// changed reports whether the run takes the change changeID (version 1): always for runs
// with "local-db-reads", which came after it, without a GetVersion call of its own.
func changed(ctx workflow.Context, changeID string) bool {
	return localDBReads(ctx) || version(ctx, changeID, 1) >= 1
}
