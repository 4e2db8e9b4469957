package eventlog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// Failures recorded but not fed yet (a Kafka consumer records only; an Accept whose detector
// signal failed), then billing's next event for each invoice (a pause) through Accept from
// more requests than the store has connections: each claims its invoice, finds the unfed
// failure first and feeds it before starting the run — on the claim's own connection. It
// used to take a second connection of the pool, which the claims held: all stalled.
func TestEventsBehindAnUnfedFailureFromMoreRequestsThanConnectionsAreDelivered(t *testing.T) {
	st := fakes.MustStore(t) // 8 connections
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	const n = 24
	for i := range n {
		mustRecord(t, in, spikeFailure(fmt.Sprintf("evt_f%d", i), fmt.Sprintf("inv_%d", i), t0))
	}
	results := make(chan error, n)
	for i := range n {
		go func() {
			res, err := in.Accept(context.Background(), ev("dunning.pause", fmt.Sprintf("evt_p%d", i), fmt.Sprintf("inv_%d", i), t0.Add(1e9), "reason", "disputed"), "test")
			if err == nil && !res.Delivered {
				err = fmt.Errorf("pause %d recorded but not delivered: %s", i, res.Note)
			}
			results <- err
		}()
	}
	failed := 0
	for range n {
		if err := <-results; err != nil {
			failed++
			if failed == 1 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d pauses (and their invoices' runs) not delivered: claims wait on the pool for the detector feed", failed, n)
	}
}
