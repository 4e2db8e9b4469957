package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// The same-shape baseline of the billable-Actions test: a dunning run written the obvious
// way. Every PostgreSQL read or write, the decision, the retry advice and the send is a
// regular activity (no-ops here: only the commands count); every wait is a timer; every
// status change, step, decision and send is an upsert of the search attributes it changes;
// the events reach it as the same signals. It is started as Recoup's runs are (a
// SignalWithStart carrying the search attributes, which is free).

const actionsBaselineQueue = "recoup-actions-baseline"

// baselineIn shapes a baseline run like the Recoup run it is compared with.
type baselineIn struct {
	Steps     []time.Duration
	FinalWait time.Duration
	Held      bool         // an incident holds the first message (until release-hold)
	Offers    map[int]bool // steps whose decision carries an incentive (announced to billing first)
}

// baselineState is what the test reads of a baseline run (query "state").
type baselineState struct {
	Status string
	Sent   int
}

var baselineActivities = []string{"PlanRun", "AdviseRetry", "CheckHold", "FetchCustomerHistory", "DecideStrategy",
	"AnnounceOffer", "SendEmail", "FinishRun"}

func baselineNoop(ctx context.Context) error { _ = activity.GetInfo(ctx); return nil }

// BaselineDunning is the obvious-way dunning run.
func BaselineDunning(ctx workflow.Context, in baselineIn) (string, error) {
	ao := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	act := func(name string) { _ = workflow.ExecuteActivity(ao, name).Get(ao, nil) }
	st := baselineState{Status: "active"}
	if err := workflow.SetQueryHandler(ctx, "state", func() (baselineState, error) { return st, nil }); err != nil {
		return "", err
	}
	upsert := func(u ...temporal.SearchAttributeUpdate) { _ = workflow.UpsertTypedSearchAttributes(ctx, u...) }
	status := func(s string) { st.Status = s; upsert(recoup.DunningStatusKey.ValueSet(s)) }
	var settled, canceled, paused, released bool
	var pausedAt time.Time
	var pausedFor time.Duration
	failures := 1
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		on := func(name string, f func()) {
			sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(c workflow.ReceiveChannel, _ bool) {
				var v any
				c.Receive(ctx, &v)
				f()
			})
		}
		on(recoup.SignalPaymentFailed, func() {})
		on(recoup.SignalRetryResult, func() { settled = true })
		on(recoup.SignalCancel, func() { canceled = true })
		on(recoup.SignalReleaseHold, func() { released = true })
		on(recoup.SignalPause, func() { paused, pausedAt = true, workflow.Now(ctx); status("paused") })
		on(recoup.SignalResume, func() {
			paused, pausedFor = false, pausedFor+workflow.Now(ctx).Sub(pausedAt)
			status("active")
		})
		for {
			sel.Select(ctx)
		}
	})
	ended := func() bool { return settled || canceled }
	// wait waits until at() (moved back by pauses), a timer per wait; false when the run ended.
	wait := func(at func() time.Time) bool {
		for !ended() {
			if paused {
				_ = workflow.Await(ctx, func() bool { return !paused || ended() })
				continue
			}
			d := at().Sub(workflow.Now(ctx))
			if d <= 0 {
				return true
			}
			if ok, _ := workflow.AwaitWithTimeout(ctx, d, func() bool { return paused || ended() }); !ok {
				return true
			}
		}
		return false
	}
	act("PlanRun")
	for range failures {
		act("AdviseRetry")
	}
	act("CheckHold")
	start := workflow.Now(ctx)
	if in.Held {
		status("held")
		_, _ = workflow.AwaitWithTimeout(ctx, 24*time.Hour, func() bool { return released || ended() })
		status("active")
		pausedFor += workflow.Now(ctx).Sub(start)
	}
	for i, off := range in.Steps {
		if !wait(func() time.Time { return start.Add(off + pausedFor) }) {
			break
		}
		upsert(recoup.DunningStepKey.ValueSet(int64(i + 1)))
		act("FetchCustomerHistory")
		act("DecideStrategy")
		upsert(recoup.PromptVersionKey.ValueSet("v"), recoup.DecidedByKey.ValueSet("rules"))
		if in.Offers[i+1] {
			act("AnnounceOffer")
		}
		act("SendEmail")
		st.Sent++
		upsert(recoup.LastChannelKey.ValueSet("email"))
	}
	if !ended() {
		last := workflow.Now(ctx)
		wait(func() time.Time { return last.Add(in.FinalWait + pausedFor) })
	}
	switch {
	case settled:
		status("recovered")
	case canceled:
		status("canceled")
	default:
		status("exhausted")
	}
	act("FinishRun")
	return st.Status, nil
}

// baseline runs baseline workflows on h's server.
type baseline struct {
	h *workertest.Harness
	t *testing.T
}

func startBaseline(t *testing.T, h *workertest.Harness) *baseline {
	w := worker.New(h.Client, actionsBaselineQueue, worker.Options{})
	w.RegisterWorkflow(BaselineDunning)
	for _, name := range baselineActivities {
		w.RegisterActivityWithOptions(baselineNoop, activity.RegisterOptions{Name: name})
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return &baseline{h: h, t: t}
}

func baselineID(name string) string { return "baseline-" + name }

// start starts a baseline run as the ingest starts Recoup's: SignalWithStart with its
// search attributes.
func (b *baseline) start(name string, in baselineIn) {
	b.t.Helper()
	_, err := b.h.Client.SignalWithStartWorkflow(context.Background(), baselineID(name), recoup.SignalPaymentFailed, "evt",
		client.StartWorkflowOptions{ID: baselineID(name), TaskQueue: actionsBaselineQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(recoup.InvoiceIDKey.ValueSet("inv_"+name),
				recoup.CustomerIDKey.ValueSet("cus_"+name), recoup.DunningStatusKey.ValueSet("active"), recoup.DunningStepKey.ValueSet(0))},
		BaselineDunning, in)
	if err != nil {
		b.t.Fatal(err)
	}
}

func (b *baseline) signal(name, signal string) {
	b.t.Helper()
	if err := b.h.Client.SignalWorkflow(context.Background(), baselineID(name), "", signal, "x"); err != nil {
		b.t.Fatal(err)
	}
}

func (b *baseline) state(name string) baselineState {
	v, err := b.h.Client.QueryWorkflow(context.Background(), baselineID(name), "", "state")
	var s baselineState
	if err == nil {
		_ = v.Get(&s)
	}
	return s
}

func (b *baseline) result(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var s string
	if err := b.h.Client.GetWorkflow(ctx, baselineID(name), "").Get(ctx, &s); err != nil {
		b.t.Fatalf("baseline %s: %v", name, err)
	}
	return s
}

func (b *baseline) waitSent(name string, n int) {
	b.h.Eventually(fmt.Sprintf("baseline %s's message %d", name, n), func() bool { return b.state(name).Sent >= n })
}
