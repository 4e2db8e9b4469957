package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recoup-dunning/recoup"
)

// Delivering an invoice's events. A relay (any number of them, in any number of processes)
// first claims the invoice with ClaimInvoice, a PostgreSQL advisory lock held by one
// connection, and then delivers the invoice's undelivered events one after another in the
// log's order. What an event does (start a run, signal it, wait for one, nothing) is decided
// by Claim.Route under the same lock as RecordEvent takes, so no settling event can be
// recorded between the decision to start a run and the decision being durable.

// ErrPreviousRunRunning is returned by Claim.Started when the run a start joined is an
// earlier episode's, still finishing: the start is to be tried again later.
var ErrPreviousRunRunning = errors.New("the invoice's previous dunning run is still finishing")

// UndeliveredEvent is an accepted event not yet delivered to Temporal.
type UndeliveredEvent struct {
	EventID    string
	InvoiceID  string
	Type       string
	Body       []byte
	OccurredAt time.Time // as recorded (clamped): what the run is told
	ReceivedAt time.Time
}

// DueInvoices lists up to limit invoices whose next undelivered event is due (not waiting
// for the backoff of a failed delivery, and not parked), the invoice whose next event was
// received first first.
func (s *Store) DueInvoices(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT invoice_id FROM (
			SELECT DISTINCT ON (invoice_id) invoice_id, next_attempt_at, received_at
			FROM events WHERE delivered_at IS NULL AND parked_at IS NULL
			ORDER BY invoice_id, occurred_at, received_at, event_id
		) next WHERE next_attempt_at <= now()
		ORDER BY received_at, invoice_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list invoices with events due: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Claim is the right to deliver one invoice's events; Release gives it up. All of its
// methods use the one connection that holds the lock.
type Claim struct {
	InvoiceID string
	conn      *pgxpool.Conn
}

func deliveryLockKey(invoiceID string) string { return "recoup:deliver:" + invoiceID }

// ClaimInvoice takes the invoice's delivery lock. With wait it waits for another holder to
// release it (bounded by ctx); without, ok is false when another holder has it.
func (s *Store) ClaimInvoice(ctx context.Context, invoiceID string, wait bool) (c *Claim, ok bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("claim invoice %s: %w", invoiceID, err)
	}
	if wait {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, deliveryLockKey(invoiceID))
		ok = err == nil
	} else {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, deliveryLockKey(invoiceID)).Scan(&ok)
	}
	if err != nil {
		// The lock may have been granted as the call failed: the connection must not go
		// back to the pool holding it.
		_ = conn.Hijack().Close(context.Background())
		return nil, false, fmt.Errorf("claim invoice %s: %w", invoiceID, err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return &Claim{InvoiceID: invoiceID, conn: conn}, true, nil
}

// Release gives up the claim. A connection that cannot confirm the unlock is closed, which
// releases the lock too.
func (c *Claim) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ok bool
	err := c.conn.QueryRow(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, deliveryLockKey(c.InvoiceID)).Scan(&ok)
	if err != nil || !ok {
		_ = c.conn.Hijack().Close(ctx)
		return
	}
	c.conn.Release()
}

// Pending lists the invoice's undelivered events that are not parked, in the log's order:
// by occurred_at, then as received.
func (c *Claim) Pending(ctx context.Context) ([]UndeliveredEvent, error) {
	rows, err := c.conn.Query(ctx, `
		SELECT event_id, invoice_id, type, body, occurred_at, received_at FROM events
		WHERE invoice_id = $1 AND delivered_at IS NULL AND parked_at IS NULL
		ORDER BY occurred_at, received_at, event_id`, c.InvoiceID)
	if err != nil {
		return nil, fmt.Errorf("list the invoice's undelivered events: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (UndeliveredEvent, error) {
		var u UndeliveredEvent
		err := r.Scan(&u.EventID, &u.InvoiceID, &u.Type, &u.Body, &u.OccurredAt, &u.ReceivedAt)
		return u, err
	})
}

// Next returns the invoice's first undelivered event that is not parked, in the log's order
// (as Pending); ok is false when there is none. A relay delivers one event at a time from
// it, so that events released or recorded while it delivers (the events kept for a run it
// just started, a pause dated before a resume it has not delivered yet) take their place in
// the order instead of following the events it had already listed.
func (c *Claim) Next(ctx context.Context) (u UndeliveredEvent, ok bool, err error) {
	err = c.conn.QueryRow(ctx, `
		SELECT event_id, invoice_id, type, body, occurred_at, received_at FROM events
		WHERE invoice_id = $1 AND delivered_at IS NULL AND parked_at IS NULL
		ORDER BY occurred_at, received_at, event_id LIMIT 1`, c.InvoiceID).
		Scan(&u.EventID, &u.InvoiceID, &u.Type, &u.Body, &u.OccurredAt, &u.ReceivedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return UndeliveredEvent{}, false, nil
	}
	if err != nil {
		return UndeliveredEvent{}, false, fmt.Errorf("read the invoice's next undelivered event: %w", err)
	}
	return u, true, nil
}

// RouteAction is what delivering an event does.
type RouteAction int

// Route actions.
const (
	// RouteStart starts the episode's run (SignalWithStart); then Started.
	RouteStart RouteAction = iota + 1
	// RouteSignal signals the episode's run.
	RouteSignal
	// RoutePark keeps the event until the invoice's next run starts (Park).
	RoutePark
	// RouteIgnore delivers the event to nothing: Note says why (MarkDelivered).
	RouteIgnore
)

// Route is what delivering one event does, for which episode of the invoice's runs.
type Route struct {
	Action  RouteAction
	Episode int    // 0: the invoice has no run yet
	RunKey  string // recoup.RunKey of the episode
	RunID   string // Temporal's run id of the episode, when known
	Note    string
}

type episodeRow struct {
	episode  int
	status   string
	openedBy *string
	openedAt time.Time
	runID    *string
	closedAt *time.Time
}

func (e *episodeRow) started() bool { return e.runID != nil || e.openedBy == nil }

func (e *episodeRow) route(a RouteAction, invoiceID, note string) Route {
	r := Route{Action: a, Episode: e.episode, RunKey: recoup.RunKey(recoup.WorkflowID(invoiceID), e.episode), Note: note}
	if e.runID != nil {
		r.RunID = *e.runID
	}
	return r
}

func scanEpisode(row pgx.Row) (*episodeRow, error) {
	var e episodeRow
	err := row.Scan(&e.episode, &e.status, &e.openedBy, &e.openedAt, &e.runID, &e.closedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the invoice's runs: %w", err)
	}
	return &e, nil
}

const episodeColumns = `episode, status, opened_by, opened_at, run_id, closed_at`

// settlingTypes are the event types that settle an invoice (end its dunning); the queries
// take them as a parameter (type = ANY(...)), so this is the one list.
var settlingTypes = []string{recoup.EventRecovered, recoup.EventRetrySucceeded, recoup.EventPaymentSucceeded, recoup.EventCancel}

// Route decides, durably and under the invoice's record lock, what delivering ev does:
//
//   - payment.failed: the opener of an open episode starts it (again: a start is idempotent);
//     with an open episode, it is signalled (or parked until the episode's run has started);
//     otherwise it opens episode n+1 — unless the latest episode closed at or after it
//     occurred (it belongs to that episode) or an event settled the invoice at or after it
//     occurred (payment.recovered, payment.retry_succeeded, dunning.cancel).
//   - any other event: signalled to the open episode's run; parked while the invoice has no
//     run, or its run has not started, or the latest run closed before the event occurred
//     (it waits for the next run); ignored when it occurred while the latest run was open
//     but that run has ended, or when it settles but occurred before the failure that
//     opened the run.
func (c *Claim) Route(ctx context.Context, ev UndeliveredEvent) (Route, error) {
	var r Route
	err := pgx.BeginFunc(ctx, c.conn, func(tx pgx.Tx) error {
		if err := lockInvoice(ctx, tx, c.InvoiceID); err != nil {
			return err
		}
		if ev.Type != recoup.EventPaymentFailed {
			latest, err := scanEpisode(tx.QueryRow(ctx, `SELECT `+episodeColumns+` FROM invoice_runs
				WHERE invoice_id = $1 ORDER BY episode DESC LIMIT 1`, c.InvoiceID))
			if err != nil {
				return err
			}
			r = routeOther(ev, latest, c.InvoiceID)
			return nil
		}
		latest, opened, err := latestAndOpened(ctx, tx, c.InvoiceID, ev.EventID)
		if err != nil {
			return err
		}
		switch {
		case opened != nil && opened.status == "open":
			r = opened.route(RouteStart, c.InvoiceID, "started the dunning run")
			return nil
		case opened != nil:
			r = opened.route(RouteIgnore, c.InvoiceID, fmt.Sprintf("this failure opened dunning run %d, which has ended", opened.episode))
			return nil
		case latest != nil && latest.status == "open" && latest.started():
			r = latest.route(RouteSignal, c.InvoiceID, "signaled the dunning run")
			return nil
		case latest != nil && latest.status == "open":
			r = latest.route(RoutePark, c.InvoiceID, "the invoice's dunning run has not started yet; delivered once it has")
			return nil
		case latest != nil && latest.closedAt != nil && !ev.OccurredAt.After(*latest.closedAt):
			r = latest.route(RouteIgnore, c.InvoiceID, fmt.Sprintf(
				"belongs to dunning run %d of the invoice, which ended at %s, after this failure occurred; recorded only",
				latest.episode, latest.closedAt.UTC().Format(time.RFC3339)))
			return nil
		}
		var settledBy string
		err = tx.QueryRow(ctx, `
			SELECT event_id FROM events
			WHERE invoice_id = $1 AND type = ANY($3)
				AND ($2::timestamptz IS NULL OR occurred_at > $2)
			ORDER BY occurred_at, received_at LIMIT 1`, c.InvoiceID, settledSince(latest), settlingTypes).Scan(&settledBy)
		if err == nil {
			r = Route{Action: RouteIgnore, Note: "the invoice was already settled by event " + settledBy + "; no dunning started"}
			if latest != nil {
				r.Episode = latest.episode
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("check whether the invoice was settled: %w", err)
		}
		next := &episodeRow{episode: 1, status: "open", openedBy: &ev.EventID, openedAt: ev.OccurredAt}
		if latest != nil {
			next.episode = latest.episode + 1
		}
		r = next.route(RouteStart, c.InvoiceID, "started the dunning run")
		if next.episode > 1 {
			r.Note = fmt.Sprintf("started dunning run %d of the invoice (a failure after run %d ended)", next.episode, latest.episode)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO invoice_runs (invoice_id, episode, run_key, status, opened_by, opened_at)
			VALUES ($1, $2, $3, 'open', $4, $5)`, c.InvoiceID, next.episode, r.RunKey, ev.EventID, ev.OccurredAt); err != nil {
			return fmt.Errorf("open dunning run %d: %w", next.episode, err)
		}
		return nil
	})
	return r, err
}

// latestAndOpened reads, in one query, the invoice's latest episode and the episode the
// failure eventID opened (nil when none; the same row when it is the latest).
func latestAndOpened(ctx context.Context, tx pgx.Tx, invoiceID, eventID string) (latest, opened *episodeRow, err error) {
	rows, err := tx.Query(ctx, `SELECT `+episodeColumns+` FROM invoice_runs
		WHERE invoice_id = $1 AND (opened_by = $2 OR episode = (SELECT max(episode) FROM invoice_runs WHERE invoice_id = $1))
		ORDER BY episode`, invoiceID, eventID)
	if err != nil {
		return nil, nil, fmt.Errorf("read the invoice's runs: %w", err)
	}
	eps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*episodeRow, error) { return scanEpisode(r) })
	if err != nil {
		return nil, nil, fmt.Errorf("read the invoice's runs: %w", err)
	}
	for _, e := range eps {
		if e.openedBy != nil && *e.openedBy == eventID {
			opened = e
		}
	}
	if len(eps) > 0 {
		latest = eps[len(eps)-1] // the highest episode
	}
	return latest, opened, nil
}

func routeOther(ev UndeliveredEvent, latest *episodeRow, invoiceID string) Route {
	switch {
	case ev.Type == recoup.EventPaymentSucceeded && (latest == nil || latest.status != "open"):
		// Most successful payments have no dunning run: payment volume only. (It still
		// keeps a later failure that occurred before it from starting a run.)
		r := Route{Action: RouteIgnore, Note: "payment volume recorded; no dunning run to settle"}
		if latest != nil {
			r.Episode = latest.episode
		}
		return r
	case latest == nil:
		return Route{Action: RoutePark, Note: "no dunning run for this invoice yet; delivered once one starts"}
	case latest.status == "open" && !latest.started():
		return latest.route(RoutePark, invoiceID, "the invoice's dunning run has not started yet; delivered once it has")
	case latest.status == "open":
		return latest.route(RouteSignal, invoiceID, "signaled the dunning run")
	case latest.closedAt != nil && !ev.OccurredAt.After(*latest.closedAt):
		return latest.route(RouteIgnore, invoiceID, "the invoice's dunning run had ended; recorded only")
	default:
		return latest.route(RoutePark, invoiceID, "the invoice's last dunning run has ended; delivered to its next run, if one starts")
	}
}

// Started records that the episode's run was started (or joined) as Temporal run runID and
// unparks the invoice's parked events, to be delivered next. ErrPreviousRunRunning: runID is
// an earlier episode's run, which the start joined because it had not finished yet.
func (c *Claim) Started(ctx context.Context, episode int, runID string) error {
	return pgx.BeginFunc(ctx, c.conn, func(tx pgx.Tx) error {
		if err := lockInvoice(ctx, tx, c.InvoiceID); err != nil {
			return err
		}
		// Recorded unless an earlier episode has that run id (asked only then: a start
		// that joined an earlier run is rare).
		tag, err := tx.Exec(ctx, `UPDATE invoice_runs SET run_id = $3 WHERE invoice_id = $1 AND episode = $2
			AND NOT EXISTS (SELECT 1 FROM invoice_runs WHERE invoice_id = $1 AND episode < $2 AND run_id = $3)`,
			c.InvoiceID, episode, runID)
		if err != nil {
			return fmt.Errorf("record the run's start: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var earlier int
			err := tx.QueryRow(ctx, `SELECT episode FROM invoice_runs WHERE invoice_id = $1 AND episode < $2 AND run_id = $3`,
				c.InvoiceID, episode, runID).Scan(&earlier)
			if err == nil {
				return fmt.Errorf("%w (run %d)", ErrPreviousRunRunning, earlier)
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("record the run's start: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `
			UPDATE events SET parked_at = NULL, next_attempt_at = now()
			WHERE invoice_id = $1 AND parked_at IS NOT NULL AND delivered_at IS NULL`, c.InvoiceID); err != nil {
			return fmt.Errorf("unpark the invoice's events: %w", err)
		}
		return nil
	})
}

// Gone closes an open episode whose run Temporal no longer has (it ended without recording
// its outcome, or was terminated): from now on, the invoice's events are judged against a
// closed run.
func (c *Claim) Gone(ctx context.Context, episode int) error {
	_, err := c.conn.Exec(ctx, `
		UPDATE invoice_runs SET status = 'closed', closed_at = now(),
			close_note = 'the run was no longer running in Temporal'
		WHERE invoice_id = $1 AND episode = $2 AND status = 'open'`, c.InvoiceID, episode)
	if err != nil {
		return fmt.Errorf("close dunning run %d: %w", episode, err)
	}
	return nil
}

// MarkDelivered records that an event was delivered (or judged: note says what it did).
func (c *Claim) MarkDelivered(ctx context.Context, eventID string, episode int, note string) error {
	_, err := c.conn.Exec(ctx, `
		UPDATE events SET delivered_at = now(), delivery_error = NULL, parked_at = NULL,
			episode = NULLIF($2, 0), delivery_note = $3
		WHERE event_id = $1 AND delivered_at IS NULL`, eventID, episode, note)
	if err != nil {
		return fmt.Errorf("mark event delivered: %w", err)
	}
	return nil
}

// Park keeps an event undelivered until the invoice's next run starts.
func (c *Claim) Park(ctx context.Context, eventID, note string) error {
	_, err := c.conn.Exec(ctx, `
		UPDATE events SET parked_at = COALESCE(parked_at, now()), delivery_error = NULL, delivery_note = $2
		WHERE event_id = $1 AND delivered_at IS NULL`, eventID, note)
	if err != nil {
		return fmt.Errorf("park event: %w", err)
	}
	return nil
}

// MarkDeliveryFailed records why an event could not be delivered yet (see
// Store.MarkDeliveryFailed).
func (c *Claim) MarkDeliveryFailed(ctx context.Context, eventID, reason string) error {
	return markDeliveryFailed(ctx, c.conn, eventID, reason)
}

// EventDelivery is what became of a recorded event.
type EventDelivery struct {
	Delivered bool
	Parked    bool
	Episode   int
	Note      string
	Error     string
}

// EventDelivery returns what became of a recorded event.
func (s *Store) EventDelivery(ctx context.Context, eventID string) (EventDelivery, error) {
	var d EventDelivery
	var episode *int
	var deliveryErr *string
	err := s.pool.QueryRow(ctx, `
		SELECT delivered_at IS NOT NULL, parked_at IS NOT NULL, episode, delivery_note, delivery_error
		FROM events WHERE event_id = $1`, eventID).Scan(&d.Delivered, &d.Parked, &episode, &d.Note, &deliveryErr)
	if err != nil {
		return EventDelivery{}, fmt.Errorf("read event %s: %w", eventID, err)
	}
	if episode != nil {
		d.Episode = *episode
	}
	if deliveryErr != nil {
		d.Error = *deliveryErr
	}
	return d, nil
}

// InvoiceRun is one dunning run (episode) of an invoice.
type InvoiceRun struct {
	Episode  int
	RunKey   string
	Open     bool
	OpenedBy string // the payment.failed that opened it; empty when started elsewhere
	OpenedAt time.Time
	RunID    string
	ClosedAt time.Time
}

// InvoiceRuns lists the runs of an invoice, first first.
func (s *Store) InvoiceRuns(ctx context.Context, invoiceID string) ([]InvoiceRun, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT episode, run_key, status = 'open', COALESCE(opened_by, ''), opened_at, COALESCE(run_id, ''), closed_at
		FROM invoice_runs WHERE invoice_id = $1 ORDER BY episode`, invoiceID)
	if err != nil {
		return nil, fmt.Errorf("list the invoice's runs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (InvoiceRun, error) {
		var x InvoiceRun
		var closed *time.Time
		err := r.Scan(&x.Episode, &x.RunKey, &x.Open, &x.OpenedBy, &x.OpenedAt, &x.RunID, &closed)
		if closed != nil {
			x.ClosedAt = *closed
		}
		return x, err
	})
}

// episodeOf is the episode a run key names: n for "<workflow id>#n", 1 otherwise.
func episodeOf(runKey string) int {
	if i := strings.LastIndexByte(runKey, '#'); i >= 0 {
		if n, err := strconv.Atoi(runKey[i+1:]); err == nil && n >= 1 {
			return n
		}
	}
	return 1
}

// settledSince is the time after which a settling event settles the invoice's next run: any
// settle recorded since its last run ended (whatever its value date: a payment that settled
// later, or a host whose clock is behind, still settles it — invariant I1); nil when the
// invoice has had no run.
func settledSince(latest *episodeRow) *time.Time {
	if latest == nil {
		return nil
	}
	return latest.closedAt
}
