package eventlog

import (
	"context"
	"log/slog"
	"time"

	"github.com/recoup-dunning/recoup/internal/observability"
)

// Relay delivers recorded events to Temporal: at once when nudged, and every Interval in
// any case, so that events accepted while Temporal (or the worker) was down, or before a
// restart, are delivered once it is back. Several relays may run at once, in any number of
// processes: each invoice is delivered by one relay at a time (a PostgreSQL lock), its
// events in the log's order, and delivering an event twice is harmless (runs ignore event
// ids they have seen).
type Relay struct {
	Ingest   *Ingestor
	Metrics  *observability.IngressMetrics
	Logger   *slog.Logger
	Interval time.Duration // default 1s
	Batch    int           // events read per round, default 500
	// FeedInterval is the shortest time between two rounds of the detector feed (default
	// 200ms). A round sends one signal per 1,000 unfed events (failures and successes)
	// until none is left: 1/FeedInterval signals a second below 1,000 events a round.
	FeedInterval time.Duration
	// NoRunDelivery runs the detector feed alone (benchmarks of the detector path).
	NoRunDelivery bool

	nudge chan struct{}
}

// NewRelay returns a relay.
func NewRelay(in *Ingestor, m *observability.IngressMetrics, logger *slog.Logger) *Relay {
	if logger == nil {
		logger = slog.Default()
	}
	if in.Metrics == nil {
		in.Metrics = m
	}
	return &Relay{Ingest: in, Metrics: m, Logger: logger, Interval: time.Second, Batch: 500, nudge: make(chan struct{}, 1)}
}

// Nudge asks for a delivery round now (and a detector feed round).
func (r *Relay) Nudge() {
	r.Ingest.NudgeDetectorFeed()
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

// Run delivers, and feeds the spike detector (Ingestor.RunDetectorFeed), until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() { defer close(done); r.Ingest.RunDetectorFeed(ctx, r.FeedInterval) }()
	defer func() { <-done }()
	if r.NoRunDelivery {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	var lastErr string
	for {
		err := r.round(ctx)
		if err != nil && err.Error() != lastErr && ctx.Err() == nil {
			r.Logger.Warn("relay: delivery failed; the event stays in the log and is retried with backoff", "error", err)
		}
		if err == nil && lastErr != "" {
			r.Logger.Info("relay: deliveries resumed")
			lastErr = ""
		} else if err != nil {
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-r.nudge:
		case <-t.C:
		}
	}
}

// round delivers due events until none is left or one fails.
func (r *Relay) round(ctx context.Context) error {
	defer r.observeBacklog(ctx)
	for ctx.Err() == nil {
		n, err := r.Ingest.DeliverPending(ctx, r.Batch, r.report)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	// Customers' replies, in the order they were received (one relay at a time).
	_, err := r.Ingest.DeliverPendingReplies(ctx, r.Batch)
	return err
}

func (r *Relay) report(d Delivery) {
	if r.Metrics == nil {
		return
	}
	if d.Err != nil {
		r.Metrics.Deliveries.WithLabelValues("failed").Inc()
		return
	}
	if d.Parked {
		r.Metrics.Deliveries.WithLabelValues("parked").Inc()
		return
	}
	r.Metrics.Deliveries.WithLabelValues("delivered").Inc()
	r.Metrics.DeliveryLag.Observe(d.Waited.Seconds())
}

func (r *Relay) observeBacklog(ctx context.Context) {
	if r.Metrics == nil || ctx.Err() != nil {
		return
	}
	n, age, err := r.Ingest.Store.Backlog(ctx)
	if err != nil {
		return
	}
	r.Metrics.Backlog.Set(float64(n))
	r.Metrics.BacklogAge.Set(age.Seconds())
	if n, age, err := r.Ingest.Store.DetectorFeedBacklog(ctx); err == nil {
		r.Metrics.DetectorBacklog.Set(float64(n))
		r.Metrics.DetectorBacklogAge.Set(age.Seconds())
	}
	if parked, err := r.Ingest.Store.ParkedReplies(ctx); err == nil {
		r.Metrics.RepliesParked.Set(float64(parked))
	}
}
