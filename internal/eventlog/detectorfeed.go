package eventlog

import (
	"context"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// The failure-spike detector is fed from the event log, apart from the delivery of events
// to dunning runs: a feed round reads the payment.failed and payment.succeeded events the
// detector has not heard of (oldest received first, at most maxBatch), signals them to the
// detector as one batch and marks them fed (postgres.Store.FeedDetector). RunDetectorFeed
// runs rounds as events arrive, at most one every FeedInterval, so the detector gets a
// bounded number of signals a second whatever the failure rate, and its lag does not
// depend on how fast runs are started. A run is started only once the detector heard of
// the failure that opens it (awaitFed): a failure that opens an incident can hold its own
// run.

// maxBatch bounds one signal's records (a record is about 150 bytes of JSON, at most about
// 400 with maxCodeLen: 0.4 MB a signal, under Temporal's 2 MB payload limit).
const maxBatch = 1000

// maxCodeLen bounds a record's failure code.
const maxCodeLen = 128

// detectorFeed serialises this process's feed rounds (other processes: an advisory lock).
type detectorFeed struct {
	once  sync.Once
	turn  chan struct{} // held during a round
	nudge chan struct{}

	mu sync.Mutex
	// ended is closed when the running round ends or commits a batch (then replaced): a
	// round that drains a backlog holds the turn for every batch, and a delivery whose
	// event an early batch fed must not wait for the rest.
	ended chan struct{}
	// The events this process's rounds fed (committed), newest fedMemory at least: a
	// delivery finds its event there without asking the database.
	fed, fedBefore map[string]struct{}
}

// fedMemory is how many fed event ids a process remembers at least (twice that at most:
// about 100 bytes each).
const fedMemory = 4096

// remember records events a round of this process fed (its transaction committed) and
// wakes the deliveries waiting for them.
func (f *detectorFeed) remember(ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if len(f.fed) >= fedMemory {
			f.fedBefore, f.fed = f.fed, nil
		}
		if f.fed == nil {
			f.fed = make(map[string]struct{}, fedMemory)
		}
		f.fed[id] = struct{}{}
	}
	f.wakeLocked()
}

// wakeLocked wakes the deliveries waiting on roundEnd (f.mu held).
func (f *detectorFeed) wakeLocked() {
	close(f.ended)
	f.ended = make(chan struct{})
}

// fedHere reports whether a round of this process fed the event (lately); false says
// nothing: another process, or a round long ago, may have.
func (f *detectorFeed) fedHere(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, a := f.fed[id]
	_, b := f.fedBefore[id]
	return a || b
}

func (f *detectorFeed) init() {
	f.once.Do(func() {
		f.turn = make(chan struct{}, 1)
		f.nudge = make(chan struct{}, 1)
		f.ended = make(chan struct{})
	})
}

// roundEnd is closed when the round running now (or the next one) ends or commits a batch:
// a delivery waiting for its event to be fed by this process's round wakes then, not on a
// poll.
func (f *detectorFeed) roundEnd() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended
}

// release ends a round: the turn is free and its waiters wake.
func (f *detectorFeed) release() {
	<-f.turn
	f.mu.Lock()
	f.wakeLocked()
	f.mu.Unlock()
}

// NudgeDetectorFeed asks RunDetectorFeed for a round (no later than its FeedInterval).
func (in *Ingestor) NudgeDetectorFeed() {
	in.feed.init()
	select {
	case in.feed.nudge <- struct{}{}:
	default:
	}
}

// FeedDetector signals the detector every recorded failure and success it has not heard
// of, a batch at a time, until none is left. It returns how many it fed; busy is true when
// another process was feeding (this one fed nothing more).
func (in *Ingestor) FeedDetector(ctx context.Context) (fed int, busy bool, err error) {
	f := &in.feed
	f.init()
	select {
	case f.turn <- struct{}{}:
	case <-ctx.Done():
		return 0, false, fmt.Errorf("feed the spike detector: %w", ctx.Err())
	}
	defer f.release()
	for {
		n, ok, err := in.feedRound(ctx, in.Store.FeedDetector)
		fed += n
		if err != nil || !ok || n < maxBatch {
			return fed, !ok, err
		}
	}
}

// RunDetectorFeed feeds the detector until ctx ends: when nudged (an event was accepted)
// and every second in any case (events recorded by other processes, or whose feed failed),
// at most one round every interval (default 200ms).
func (in *Ingestor) RunDetectorFeed(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	in.feed.init()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastErr string
	for {
		start := time.Now()
		_, _, err := in.FeedDetector(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && err.Error() != lastErr:
			in.log().Warn("detector feed failed; the events stay in the log and are fed again", "error", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			in.log().Info("detector feed resumed")
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-in.feed.nudge:
		case <-t.C:
		}
		if wait := interval - time.Since(start); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// awaitFed returns once the detector heard of the recorded event, or fails when it could
// not within deliveryTimeout. It feeds a batch at a time itself when no round of this
// process is running, and looks at its event after each batch: a run waits for its own
// failure, never for the rest of a backlog (newer events, successes) to drain.
//
// With a claim (the caller holds one), it asks and feeds on the claim's connection:
// deliveries holding every connection of the pool must not each wait for another. Accept feeds before it
// claims, so that its delivery finds the event fed.
func (in *Ingestor) awaitFed(ctx context.Context, claim *postgres.Claim, eventID string, justRecorded bool) error {
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	f := &in.feed
	f.init()
	fedYet, feed := in.Store.DetectorFed, in.Store.FeedDetector
	if claim != nil {
		fedYet, feed = claim.DetectorFed, claim.FeedDetector
	}
	for look := 0; ; look++ {
		// Taken before looking: a round that ends after the look wakes this wait.
		ended := f.roundEnd()
		if f.fedHere(eventID) {
			return nil
		}
		// An event this call just recorded is not fed yet (but by a round that read it
		// after its commit, which the waits below settle): the first look skips asking.
		if look > 0 || !justRecorded {
			fed, err := fedYet(ctx, eventID)
			if err != nil || fed {
				return err
			}
		}
		select {
		case f.turn <- struct{}{}:
			n, ok, err := in.feedRound(ctx, feed)
			f.release()
			if err != nil {
				return err
			}
			if ok && n > 0 {
				continue // a batch went out: look again
			}
			// Another process holds the advisory lock and feeds: give it a moment.
			if err := pause(ctx, otherFeederPoll, eventID); err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			return fmt.Errorf("feed the spike detector: %w", ctx.Err())
		default: // a round of this process is running
		}
		// This process's round feeds (a batch it may have read before the event was
		// recorded): look again when it ends or commits a batch.
		select {
		case <-ctx.Done():
			return fmt.Errorf("feed the spike detector: event %s not fed yet: %w", eventID, ctx.Err())
		case <-ended:
		}
	}
}

// feedRound runs one feed round with feed (on the pool or on a claim's connection) and
// remembers what it fed once it committed.
func (in *Ingestor) feedRound(ctx context.Context, feed func(context.Context, int, func([]postgres.FeedEvent) error) (int, bool, error)) (int, bool, error) {
	var ids []string
	n, ok, err := feed(ctx, maxBatch, func(evs []postgres.FeedEvent) error {
		ids = ids[:0]
		for _, e := range evs {
			ids = append(ids, e.EventID)
		}
		return in.signalDetectorBatch(ctx, evs)
	})
	if err == nil && n > 0 {
		in.feed.remember(ids)
	}
	return n, ok, err
}

// otherFeederPoll is how often a delivery looks again while another process's round feeds
// (it gets no word of that round's end).
const otherFeederPoll = 50 * time.Millisecond

func pause(ctx context.Context, d time.Duration, eventID string) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("feed the spike detector: event %s not fed yet: %w", eventID, ctx.Err())
	case <-time.After(d):
		return nil
	}
}

// signalDetectorBatch hands the detector compact records of events (no PII: gateway, BIN
// prefix, issuer country, failure code, amount bucket, time), starting it if it is not
// running.
// The signal is bounded by the caller's context (a delivery's, or the feed loop's, which
// ends on shutdown) and by deliveryTimeout.
func (in *Ingestor) signalDetectorBatch(ctx context.Context, evs []postgres.FeedEvent) error {
	batch := make([]spike.Record, 0, len(evs))
	for _, e := range evs {
		ev, err := events.Decode(e.Body)
		if err != nil { // recorded events decoded when accepted; nothing to count
			in.log().Error("a recorded event no longer decodes; the detector does not count it", "event_id", e.EventID, "error", err)
			continue
		}
		ev.OccurredAt = e.OccurredAt // as recorded: clamped when it lay in the future
		batch = append(batch, detectorRecord(ev))
	}
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	opts := client.StartWorkflowOptions{
		ID:                       recoup.DetectorWorkflowID,
		TaskQueue:                recoup.DetectorTaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            "Failure-spike detector",
		StaticDetails:            "Watches every payment failure for spikes per gateway, BIN, issuer country and failure code. `starter incidents` lists what it found.",
	}
	_, err := in.Temporal.SignalWithStartWorkflow(ctx, recoup.DetectorWorkflowID, recoup.SignalFailures, batch, opts,
		recoup.DetectorWorkflowType, struct{}{}) // an empty DetectorInput: a fresh detector
	return err
}

// detectorRecord is the detector's record of a payment failure (or, for a
// payment.succeeded, of a success: payment volume).
func detectorRecord(ev events.Event) spike.Record {
	rec := spike.Record{EventID: ev.EventID, At: ev.OccurredAt, Gateway: ev.Gateway, BIN: ev.CardBIN, Country: ev.IssuerCountry,
		Code: ev.FailureCode, AmountBucket: spike.AmountBucket(ev.AmountMinor), Succeeded: ev.Type == recoup.EventPaymentSucceeded}
	if rec.Succeeded {
		rec.Code = ""
	}
	// A code is at most 128 characters (the events' schema); an event recorded before that
	// limit could carry more, and a batch of such records could exceed what one signal may
	// carry, stopping the feed (and every run start behind it) for good.
	if len(rec.Code) > maxCodeLen {
		rec.Code = rec.Code[:maxCodeLen]
	}
	return rec
}
