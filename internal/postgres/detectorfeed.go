package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup"
)

// The failure-spike detector is fed from the event log, apart from the delivery of events to
// dunning runs (migration 00018): every payment.failed and payment.succeeded recorded is
// signalled to the detector once by whichever process feeds first (one at a time: an
// advisory lock), oldest received first, and marked fed in the same transaction. A feed
// whose signal went out but whose transaction did not commit is signalled again; the
// detector counts each event id once.

// detectorFeedLock is the advisory lock one feeder at a time holds (per transaction).
const detectorFeedLock = "recoup:detector-feed"

// unfed selects the events the detector has not heard of: the predicate of the partial index
// events_detector_unfed, spelled out (a parameter would keep a generic plan off the index).
const unfed = `detector_fed_at IS NULL AND type IN ('` + recoup.EventPaymentFailed + `', '` + recoup.EventPaymentSucceeded + `')`

// FeedEvent is a recorded event the detector has not heard of yet.
type FeedEvent struct {
	EventID    string
	Type       string
	Body       []byte
	OccurredAt time.Time // as recorded (clamped)
	ReceivedAt time.Time
}

// FeedDetector hands up to limit events not fed yet, oldest received first, to send, and
// marks them fed once send returned nil (nothing is marked when it fails). ok is false when
// another feeder holds the feed (nothing was read).
func (s *Store) FeedDetector(ctx context.Context, limit int, send func([]FeedEvent) error) (n int, ok bool, err error) {
	return feedDetector(ctx, s.pool, limit, send)
}

// FeedDetector is Store.FeedDetector on the claim's own connection: a delivery holding a
// claim feeds without a second connection (see Claim.DetectorFed).
func (c *Claim) FeedDetector(ctx context.Context, limit int, send func([]FeedEvent) error) (n int, ok bool, err error) {
	return feedDetector(ctx, c.conn, limit, send)
}

func feedDetector(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, limit int, send func([]FeedEvent) error) (n int, ok bool, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`, detectorFeedLock).Scan(&ok); err != nil || !ok {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT event_id, type, body, occurred_at, received_at FROM events
			WHERE `+unfed+`
			ORDER BY received_at LIMIT $1`, limit)
		if err != nil {
			return err
		}
		evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FeedEvent, error) {
			var e FeedEvent
			return e, r.Scan(&e.EventID, &e.Type, &e.Body, &e.OccurredAt, &e.ReceivedAt)
		})
		if err != nil || len(evs) == 0 {
			return err
		}
		if err := send(evs); err != nil {
			return err
		}
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.EventID
		}
		if _, err := tx.Exec(ctx, `UPDATE events SET detector_fed_at = now() WHERE event_id = ANY($1)`, ids); err != nil {
			return err
		}
		n = len(evs)
		return nil
	})
	if err != nil {
		return 0, ok, fmt.Errorf("feed the spike detector: %w", err)
	}
	return n, ok, nil
}

// DetectorFed reports whether the detector was fed the event (false for an unknown event).
func (s *Store) DetectorFed(ctx context.Context, eventID string) (bool, error) {
	return detectorFed(ctx, s.pool, eventID)
}

// DetectorFed is Store.DetectorFed on the claim's own connection: a delivery that holds a
// claim asks without a second connection, so deliveries holding every connection of the
// pool cannot wait on each other for one.
func (c *Claim) DetectorFed(ctx context.Context, eventID string) (bool, error) {
	return detectorFed(ctx, c.conn, eventID)
}

func detectorFed(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, eventID string) (bool, error) {
	var fed bool
	err := q.QueryRow(ctx, `SELECT detector_fed_at IS NOT NULL FROM events WHERE event_id = $1`, eventID).Scan(&fed)
	if err != nil && !IsNotFound(err) {
		return false, fmt.Errorf("read whether the detector heard of event %s: %w", eventID, err)
	}
	return fed, nil
}

// DetectorFeedBacklog is how many recorded events the detector has not heard of, and how
// long the oldest has waited.
func (s *Store) DetectorFeedBacklog(ctx context.Context) (count int, oldest time.Duration, err error) {
	var secs float64
	err = s.pool.QueryRow(ctx, `
		SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float8 FROM events
		WHERE `+unfed).Scan(&count, &secs)
	if err != nil {
		return 0, 0, fmt.Errorf("read the detector feed's backlog: %w", err)
	}
	return count, time.Duration(secs * float64(time.Second)), nil
}
