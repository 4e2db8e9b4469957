package eventlog

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/spike"
)

// detectorClient records the detector signals; the first one blocks until released, the
// way a slow round trip to Temporal would.
type detectorClient struct {
	client.Client
	mu      sync.Mutex
	batches [][]spike.Record
	first   chan struct{}
	started chan struct{}
}

func (c *detectorClient) SignalWithStartWorkflow(_ context.Context, id, signal string, arg any, _ client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	if id != recoup.DetectorWorkflowID || signal != recoup.SignalFailures {
		panic("unexpected signal " + signal + " to " + id)
	}
	c.mu.Lock()
	n := len(c.batches)
	c.batches = append(c.batches, arg.([]spike.Record))
	c.mu.Unlock()
	if n == 0 {
		close(c.started)
		<-c.first
	}
	return nil, nil
}

// Records that arrive while a signal is in flight go together in the next one, and every
// caller returns only once its record was signalled.
func TestFeederGroupCommits(t *testing.T) {
	c := &detectorClient{first: make(chan struct{}), started: make(chan struct{})}
	in := &Ingestor{Temporal: c}
	ev := func(i int) events.Event {
		return events.Event{Type: recoup.EventPaymentFailed, FailureCode: "card_declined", CardBIN: "411111",
			AmountMinor: int64(100 * (i + 1)), OccurredAt: time.Date(2026, 11, 29, 10, 0, i, 0, time.UTC)}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 51)
	wg.Add(1)
	go func() { defer wg.Done(); errs <- in.feedDetector(context.Background(), ev(0)) }()
	<-c.started // the first signal is in flight
	for i := 1; i <= 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- in.feedDetector(context.Background(), ev(i)) }()
	}
	fakes.Eventually(t, func() bool {
		in.feed.mu.Lock()
		defer in.feed.mu.Unlock()
		return len(in.feed.pending) == 50
	}, "all 50 feeds queued behind the first signal")
	close(c.first)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(c.batches) != 2 || len(c.batches[0]) != 1 || len(c.batches[1]) != 50 {
		t.Fatalf("batches of %v records, want 1 then 50", lens(c.batches))
	}
	if r := c.batches[1][0]; r.BIN != "411111" || r.Code != "card_declined" || r.AmountBucket == "" || r.At.IsZero() {
		t.Fatalf("record %+v lacks the failure's context", r)
	}
}

func lens(b [][]spike.Record) []int {
	var out []int
	for _, x := range b {
		out = append(out, len(x))
	}
	return out
}
