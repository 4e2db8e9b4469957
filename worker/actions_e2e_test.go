package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/actions"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// goldenActions is the most Temporal Cloud billable Actions (internal/actions) each scenario's
// run may cost, as measured (BENCHMARKS.md, "Billable Actions per run"). A change that makes
// a run cost more fails TestBillableActionsPerRun: lower the figure here when a change makes
// runs cost less (the test says so), raise it only with a reason in BENCHMARKS.md.
var goldenActions = map[string]int{
	"recovered at step 1": 8,
	"exhausted (3 steps)": 16,
	"paused and resumed":  13,
	"held by an incident": 12,
}

// TestBillableActionsPerRun runs four scenarios on a real dev server, worker and PostgreSQL
// (recovered after the first message; exhausted after every step of a short schedule;
// paused, resumed and canceled after the first message; held by a failure-spike incident,
// released, then recovered), counts each run's billable Actions from its history, and the
// same scenarios of the same-shape baseline (actions_baseline_test.go). It fails when a run
// costs more than goldenActions or no less than its baseline. With RECOUP_RECORD_HISTORIES=1
// it writes the four runs' histories to workflows/testdata/lean_*.json for the replay tests.
func TestBillableActionsPerRun(t *testing.T) {
	recoupCounts := map[string]actions.Count{}
	baseCounts := map[string]actions.Count{}

	// Schedule 0 and 1 h: nothing but the test's events moves these runs on.
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Hour}})
	b := startBaseline(t, h)
	ctx := context.Background()
	now := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	first := func(inv string) { h.Eventually(inv+"'s first message", func() bool { return h.Messages(inv) == 1 }) }

	// Held by a failure-spike incident, released by an operator, then recovered (first: the
	// detector takes the spike's events, dated up to 45 minutes back, before any later one).
	h.FailureSpike("act", "411111")
	inc := mustIncidents(t, h)[0]
	h.Event(workertest.SpikeEvent("evt_act_h", "inv_act_h", "cus_act_h", "411111", time.Now().UTC()))
	h.Eventually("the run to hold", func() bool { return h.State("inv_act_h").Status == recoup.StatusHeld })
	upd, err := h.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: recoup.DetectorWorkflowID,
		UpdateName: recoup.UpdateIncident, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{recoup.IncidentAction{IncidentID: inc.ID, Action: "release", By: "oncall", Note: "issuer up"}}})
	if err != nil {
		t.Fatal(err)
	}
	var released spike.Incident
	if err := upd.Get(ctx, &released); err != nil {
		t.Fatal(err)
	}
	first("inv_act_h")
	h.Event(map[string]any{"type": "payment.retry_succeeded", "event_id": "evt_act_h2", "invoice_id": "inv_act_h", "attempt_id": "att_2", "occurred_at": now()})
	if res := h.Result("inv_act_h"); res.Status != recoup.StatusRecovered {
		t.Fatalf("held scenario ended %+v", res)
	}
	recoupCounts["held by an incident"] = runActions(t, h, recoup.WorkflowID("inv_act_h"))
	h.Record("inv_act_h", "lean_held_released")
	b.start("h", baselineIn{Steps: []time.Duration{0, time.Hour}, FinalWait: time.Hour, Held: true})
	h.Eventually("baseline held", func() bool { return b.state("h").Status == "held" })
	b.signal("h", recoup.SignalReleaseHold)
	b.waitSent("h", 1)
	b.signal("h", recoup.SignalRetryResult)
	b.result("h")
	baseCounts["held by an incident"] = runActions(t, h, baselineID("h"))

	// Recovered at step 1.
	h.Event(workertest.Failed("evt_act_r", "inv_act_r", "cus_act_r", time.Now().UTC()))
	first("inv_act_r")
	h.Event(map[string]any{"type": "payment.retry_succeeded", "event_id": "evt_act_r2", "invoice_id": "inv_act_r", "attempt_id": "att_2", "occurred_at": now()})
	if res := h.Result("inv_act_r"); res.Status != recoup.StatusRecovered {
		t.Fatalf("recovered scenario ended %+v", res)
	}
	recoupCounts["recovered at step 1"] = runActions(t, h, recoup.WorkflowID("inv_act_r"))
	h.Record("inv_act_r", "lean_recovered")
	b.start("r", baselineIn{Steps: []time.Duration{0, time.Hour}, FinalWait: time.Hour})
	b.waitSent("r", 1)
	b.signal("r", recoup.SignalRetryResult)
	b.result("r")
	baseCounts["recovered at step 1"] = runActions(t, h, baselineID("r"))

	// Paused, resumed, canceled.
	h.Event(workertest.Failed("evt_act_p", "inv_act_p", "cus_act_p", time.Now().UTC()))
	first("inv_act_p")
	h.Event(map[string]any{"type": "dunning.pause", "event_id": "evt_act_p2", "invoice_id": "inv_act_p", "reason": "disputed", "occurred_at": now()})
	h.Eventually("paused", func() bool { return h.State("inv_act_p").Status == recoup.StatusPaused })
	h.Event(map[string]any{"type": "dunning.resume", "event_id": "evt_act_p3", "invoice_id": "inv_act_p", "occurred_at": now()})
	h.Eventually("active", func() bool { return h.State("inv_act_p").Status == recoup.StatusActive })
	h.Event(map[string]any{"type": "dunning.cancel", "event_id": "evt_act_p4", "invoice_id": "inv_act_p", "reason": "written off", "occurred_at": now()})
	if res := h.Result("inv_act_p"); res.Status != recoup.StatusCanceled {
		t.Fatalf("paused scenario ended %+v", res)
	}
	recoupCounts["paused and resumed"] = runActions(t, h, recoup.WorkflowID("inv_act_p"))
	h.Record("inv_act_p", "lean_paused_canceled")
	b.start("p", baselineIn{Steps: []time.Duration{0, time.Hour}, FinalWait: time.Hour})
	b.waitSent("p", 1)
	b.signal("p", recoup.SignalPause)
	h.Eventually("baseline paused", func() bool { return b.state("p").Status == "paused" })
	b.signal("p", recoup.SignalResume)
	h.Eventually("baseline active", func() bool { return b.state("p").Status == "active" })
	b.signal("p", recoup.SignalCancel)
	b.result("p")
	baseCounts["paused and resumed"] = runActions(t, h, baselineID("p"))

	// Exhausted after every step of a short schedule (a server of its own: its timers fire).
	x := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 5 * time.Second, 10 * time.Second}, FinalWait: 2 * time.Second})
	bx := startBaseline(t, x)
	x.Event(workertest.Failed("evt_act_x", "inv_act_x", "cus_act_x", time.Now().UTC()))
	res := x.Result("inv_act_x")
	if res.Status != recoup.StatusExhausted || res.Steps != 3 {
		t.Fatalf("exhausted scenario ended %+v", res)
	}
	recoupCounts["exhausted (3 steps)"] = runActions(t, x, recoup.WorkflowID("inv_act_x"))
	x.Record("inv_act_x", "lean_exhausted")
	offers := map[int]bool{}
	for i, d := range x.State("inv_act_x").Decisions {
		offers[i+1] = d.Incentive.Kind != "" && d.Incentive.Kind != recoup.IncentiveNone
	}
	bx.start("x", baselineIn{Steps: []time.Duration{0, 5 * time.Second, 10 * time.Second}, FinalWait: 2 * time.Second, Offers: offers})
	if s := bx.result("x"); s != "exhausted" {
		t.Fatalf("baseline exhausted scenario ended %s", s)
	}
	baseCounts["exhausted (3 steps)"] = runActions(t, x, baselineID("x"))

	for _, name := range []string{"recovered at step 1", "exhausted (3 steps)", "paused and resumed", "held by an incident"} {
		r, bl := recoupCounts[name], baseCounts[name]
		line := fmt.Sprintf("actions: %-20s Recoup %2d %s | baseline %2d %s", name, r.Total(), breakdown(r), bl.Total(), breakdown(bl))
		t.Log(line)
		fmt.Println(line)
		switch g := goldenActions[name]; {
		case r.Total() > g:
			t.Errorf("%s: a run costs %d billable Actions, more than the %d recorded in goldenActions (%s)", name, r.Total(), g, breakdown(r))
		case r.Total() < g:
			t.Logf("%s: a run costs %d billable Actions, fewer than the %d in goldenActions: lower the figure there and in BENCHMARKS.md", name, r.Total(), g)
		}
		if r.Total() >= bl.Total() {
			t.Errorf("%s: Recoup %d billable Actions, not fewer than the baseline's %d", name, r.Total(), bl.Total())
		}
	}
}

// runActions counts the billable Actions of a workflow's latest run.
func runActions(t *testing.T, h *workertest.Harness, workflowID string) actions.Count {
	t.Helper()
	it := h.Client.GetWorkflowHistory(context.Background(), workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return actions.Of(evs)
}

// breakdown is a count's nonzero rules, e.g. "(start 1, activities 2, timers 1)".
func breakdown(c actions.Count) string {
	var parts []string
	for _, p := range []struct {
		n string
		v int
	}{{"start", c.Started}, {"signals", c.Signals}, {"activities", c.Activities}, {"retries", c.Retries},
		{"marker tasks", c.Markers}, {"LA retries", c.LARetries}, {"timers", c.Timers}, {"upserts", c.Upserts},
		{"updates", c.Updates}, {"signals sent", c.SignalsSent}, {"children", c.Children}, {"other", c.Other}} {
		if p.v > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", p.n, p.v))
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
