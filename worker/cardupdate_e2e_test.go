package main

import (
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// An issuer_unavailable failure (the shipped decline table) sends nothing at step 1; billing's
// card update with retry_requested is advised on at once; billing's failed retry then brings
// step 2 (a day away) forward: one message. With RECOUP_RECORD_HISTORIES=1 the run's history
// becomes workflows/testdata/card_update_failed_retry.json for the replay tests.
func TestCardUpdateAndAFailedRetryBringTheWaitingStepForward(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour}, FinalWait: time.Hour})
	now := time.Now().UTC()
	ev := workertest.Failed("evt_cu_1", "inv_cu_1", "cus_cu_1", now)
	ev["failure_code"] = "try_again_later"
	e.Event(ev)
	e.Eventually("step 1 decided", func() bool { return len(e.State("inv_cu_1").Decisions) == 1 })
	if st := e.State("inv_cu_1"); st.Decisions[0].Channel != recoup.ChannelNone || st.RetryWait != "waiting" {
		t.Fatalf("step 1 %+v (retry wait %q): want no message, waiting for a failed retry", st.Decisions[0], st.RetryWait)
	}
	e.Event(map[string]any{"type": "payment_method.updated", "event_id": "evt_cu_2", "invoice_id": "inv_cu_1", "retry_requested": true,
		"occurred_at": now.Add(time.Second).Format(time.RFC3339Nano)})
	e.Eventually("the card update's advice", func() bool {
		r := e.State("inv_cu_1").Retry
		return r != nil && r.Advised == 2 && r.Advice.FailureEventID == "evt_cu_2"
	})
	e.Event(map[string]any{"type": "payment.retry_failed", "event_id": "evt_cu_3", "invoice_id": "inv_cu_1", "attempt_id": "att_2",
		"failure_code": "try_again_later", "occurred_at": now.Add(2 * time.Second).Format(time.RFC3339Nano)})
	e.Eventually("step 2's message, at once", func() bool { return e.Messages("inv_cu_1") == 1 })
	e.Event(map[string]any{"type": "payment.recovered", "event_id": "evt_cu_4", "invoice_id": "inv_cu_1",
		"occurred_at": now.Add(3 * time.Second).Format(time.RFC3339Nano)})
	if res := e.Result("inv_cu_1"); res.Status != recoup.StatusRecovered {
		t.Fatalf("result %+v, want recovered", res)
	}
	if st := e.State("inv_cu_1"); st.Retry.Advised != 3 || st.Retry.CardUpdate != nil || st.Step != 2 {
		t.Fatalf("retry %+v at step %d: want 3 advices, the update counted, step 2 reached", st.Retry, st.Step)
	}
	e.Record("inv_cu_1", "card_update_failed_retry")
}
