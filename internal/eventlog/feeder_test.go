package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// heard lists the event ids the detector was signalled, in order, and the batch sizes.
func (f *fakeTemporal) heard() (ids []string, batches []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.detector {
		batches = append(batches, len(b))
		for _, r := range b {
			ids = append(ids, r.EventID)
		}
	}
	return ids, batches
}

func feed(t *testing.T, in *eventlog.Ingestor) int {
	t.Helper()
	n, busy, err := in.FeedDetector(context.Background())
	if err != nil || busy {
		t.Fatalf("FeedDetector: %d fed, busy %v, %v", n, busy, err)
	}
	return n
}

func spikeFailure(id, invoice string, at time.Time) []byte {
	return ev(recoup.EventPaymentFailed, id, invoice, at, "failure_code", "card_declined", "card_bin", "411111",
		"gateway", "stripe", "issuer_country", "US")
}

// The detector hears of every recorded failure and success exactly once, oldest first, in
// batches of at most 1,000 records (one signal each), and of nothing else; nothing is
// delivered to dunning runs on the way.
func TestDetectorHearsEveryFailureOnceInBatches(t *testing.T) {
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	var want []string
	for i := range 2300 {
		id := fmt.Sprintf("evt_%04d", i)
		raw := spikeFailure(id, fmt.Sprintf("inv_%d", i), t0.Add(time.Duration(i)*time.Millisecond))
		if i%10 == 9 {
			raw = ev(recoup.EventPaymentSucceeded, id, fmt.Sprintf("inv_%d", i), t0)
		}
		mustRecord(t, in, raw)
		want = append(want, id)
	}
	mustRecord(t, in, ev("dunning.pause", "evt_pause", "inv_1", t0, "reason", "disputed"))
	if n := feed(t, in); n != 2300 {
		t.Fatalf("fed %d events, want 2300", n)
	}
	ids, batches := fake.heard()
	if !slices.Equal(ids, want) {
		t.Fatalf("the detector heard %d ids (%v…), want the 2300 failures and successes once each, in order", len(ids), ids[:min(5, len(ids))])
	}
	if !slices.Equal(batches, []int{1000, 1000, 300}) {
		t.Errorf("batches of %v records, want 1000, 1000, 300", batches)
	}
	fake.mu.Lock()
	r, ok := fake.detector[0][0], fake.detector[2][299]
	fake.mu.Unlock()
	if r.BIN != "411111" || r.Code != "card_declined" || r.Gateway != "stripe" || r.Country != "US" || r.AmountBucket == "" || !r.At.Equal(t0) || r.Succeeded {
		t.Errorf("record %+v lacks the failure's context", r)
	}
	if !ok.Succeeded || ok.Code != "" {
		t.Errorf("a payment.succeeded reached the detector as %+v, want a success (payment volume)", ok)
	}
	if n := feed(t, in); n != 0 {
		t.Errorf("a second feed fed %d events again", n)
	}
	if got := fake.got(); len(got) != 0 {
		t.Errorf("feeding the detector delivered %v to runs", got)
	}
}

// A feed whose signal fails marks nothing: the same events are fed by the next round, none
// lost.
func TestDetectorFeedThatFailsLosesNothing(t *testing.T) {
	st := fakes.MustStore(t)
	fake := newFake()
	fake.detectorDown = errors.New("temporal unreachable")
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	for i := range 5 {
		mustRecord(t, in, spikeFailure(fmt.Sprintf("evt_%d", i), "inv_1", t0))
	}
	if n, _, err := in.FeedDetector(context.Background()); err == nil || n != 0 {
		t.Fatalf("FeedDetector with Temporal down: %d fed, error %v; want an error", n, err)
	}
	if n, _, err := st.DetectorFeedBacklog(context.Background()); err != nil || n != 5 {
		t.Fatalf("backlog %d (%v) after a failed feed, want 5", n, err)
	}
	if n := feed(t, in); n != 5 {
		t.Fatalf("the next round fed %d, want 5", n)
	}
	if ids, _ := fake.heard(); len(ids) != 5 {
		t.Errorf("the detector heard %v, want the 5 failures once", ids)
	}
}

// Feeders of two processes, feeding while events are recorded, feed every event once
// between them.
func TestTwoFeedersFeedEachEventOnce(t *testing.T) {
	st := fakes.MustStore(t)
	fake := newFake()
	a := &eventlog.Ingestor{Store: st, Temporal: fake}
	b := &eventlog.Ingestor{Store: secondProcess(t, st), Temporal: fake}
	const n = 600
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range n {
			recordIn(t, a, spikeFailure(fmt.Sprintf("evt_%d", i), fmt.Sprintf("inv_%d", i), t0))
		}
	}()
	for _, in := range []*eventlog.Ingestor{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, _, err := in.FeedDetector(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	feed(t, a)
	ids, _ := fake.heard()
	slices.Sort(ids)
	if len(ids) != n || len(slices.Compact(ids)) != n {
		t.Errorf("the detector heard %d records (%d distinct), want %d once each", len(ids), len(slices.Compact(ids)), n)
	}
}

// A failure's run starts only once the detector heard of the failure, so that a failure
// that opens an incident can hold its own run; later failures of the run are fed from the
// log as well, not on delivery.
func TestRunStartsOnlyAfterTheDetectorHeardOfItsFailure(t *testing.T) {
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	mustRecord(t, in, spikeFailure("evt_1", "inv_1", t0))
	var heardAtStart []string
	fake.onStart = func(call) { heardAtStart, _ = fake.heard() }
	if n := deliver(t, in); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	if !slices.Equal(heardAtStart, []string{"evt_1"}) {
		t.Fatalf("when the run started the detector had heard of %v, want evt_1", heardAtStart)
	}
	mustRecord(t, in, spikeFailure("evt_2", "inv_1", t0.Add(time.Hour)))
	deliver(t, in)
	feed(t, in)
	if ids, _ := fake.heard(); !slices.Equal(ids, []string{"evt_1", "evt_2"}) {
		t.Errorf("the detector heard %v, want evt_1 and evt_2 once each", ids)
	}
	if got := fake.got(); len(got) != 2 || got[0] != "start payment-failed evt_1" {
		t.Errorf("runs got %v, want the run started with evt_1 and evt_2 delivered to it", got)
	}
}
