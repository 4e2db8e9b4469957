package main

import (
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// A failed payment is advised on, billing's failed retry spends the budget and is advised on
// in turn, and the recovery ends the run. With RECOUP_RECORD_HISTORIES=1 the run's history
// becomes workflows/testdata/retry_advice.json for the replay tests.
func TestRetryAdviceOnAFailureAndABillingRetry(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, time.Hour}, FinalWait: time.Hour,
		Configure: func(a *activities.Activities) {
			// Stands in for the decline table (internal/model/declines) until it is wired.
			a.Dunning.ClassifyDecline = func(code string) recoup.DeclineClass {
				if code == "try_again_later" {
					return recoup.DeclineIssuerUnavailable
				}
				return recoup.DeclineGenericSoft
			}
		}})
	now := time.Now().UTC()
	e.Event(workertest.Failed("evt_ra_1", "inv_ra_1", "cus_ra_1", now))
	e.Eventually("the first advice", func() bool { r := e.State("inv_ra_1").Retry; return r != nil && r.Advised == 1 })
	first := *e.State("inv_ra_1").Retry.Advice
	e.Event(map[string]any{"type": "payment.retry_failed", "event_id": "evt_ra_2", "invoice_id": "inv_ra_1", "attempt_id": "att_2",
		"failure_code": "try_again_later", "occurred_at": now.Add(time.Second).Format(time.RFC3339Nano)})
	e.Eventually("the second advice", func() bool { return e.State("inv_ra_1").Retry.Advised == 2 })
	e.Event(map[string]any{"type": "payment.recovered", "event_id": "evt_ra_3", "invoice_id": "inv_ra_1",
		"occurred_at": now.Add(2 * time.Second).Format(time.RFC3339Nano)})
	if res := e.Result("inv_ra_1"); res.Status != recoup.StatusRecovered {
		t.Fatalf("result %+v, want recovered", res)
	}
	st := e.State("inv_ra_1")
	second := st.Retry.Advice
	if first.Class != recoup.DeclineGenericSoft || first.DoNotRetry || second.Class != recoup.DeclineIssuerUnavailable ||
		second.FailureEventID != "evt_ra_2" || second.Remaining >= first.Remaining || len(st.Retry.Attempts) != 2 {
		t.Fatalf("advices %+v then %+v (attempts %+v)", first, *second, st.Retry.Attempts)
	}
	e.Record("inv_ra_1", "retry_advice")
}
