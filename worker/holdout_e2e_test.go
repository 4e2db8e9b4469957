package main

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// A run in the holdout's no_messages control arm sends nothing at any step, yet billing is
// still advised on the failure and the run's outcome is recorded, with its arm and how it
// was recovered.
func TestNoMessagesControlArmSendsNothingButAdvisesAndRecordsTheOutcome(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Second}, FinalWait: time.Hour,
		Configure: func(a *activities.Activities) {
			set := *a.Dunning.Prompts()
			pol := *set.Policy
			pol.Holdout = policy.Holdout{Experiment: "e2e", SharePercent: 100, Treatment: policy.HoldoutNoMessages}
			set.Policy = &pol
			a.Dunning.Prompts = func() *templates.Set { return &set }
		}})
	now := time.Now().UTC()
	e.Event(workertest.Failed("evt_ho_1", "inv_ho_1", "cus_ho_1", now))
	e.Eventually("both steps decided and the failure advised", func() bool {
		s := e.State("inv_ho_1")
		return len(s.Decisions) == 2 && s.Retry != nil && s.Retry.Advised == 1
	})
	e.Event(map[string]any{"type": "payment.recovered", "event_id": "evt_ho_2", "invoice_id": "inv_ho_1",
		"occurred_at": now.Add(2 * time.Second).Format(time.RFC3339Nano)})
	if res := e.Result("inv_ho_1"); res.Status != recoup.StatusRecovered {
		t.Fatalf("result %+v, want recovered", res)
	}
	s := e.State("inv_ho_1")
	for _, d := range s.Decisions {
		if d.Channel != recoup.ChannelNone || d.Holdout != policy.ArmControl || d.Incentive.Kind != recoup.IncentiveNone {
			t.Errorf("decision %+v, want no message in the control arm", d)
		}
	}
	if len(s.Messages) != 0 || e.Mail.RequestCount() != 0 {
		t.Fatalf("the control arm sent %d messages (%d requests to the provider)", len(s.Messages), e.Mail.RequestCount())
	}
	var arm, treatment, attribution string
	if err := e.Store.Pool().QueryRow(context.Background(), `SELECT holdout, holdout_treatment, attribution
		FROM dunning_runs WHERE invoice_id = 'inv_ho_1'`).Scan(&arm, &treatment, &attribution); err != nil {
		t.Fatal(err)
	}
	if arm != "control" || treatment != "no_messages" || attribution != "before_message" {
		t.Fatalf("dunning_runs: arm %q treatment %q attribution %q", arm, treatment, attribution)
	}
}
