package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Event is an accepted event as written to the event log, with the facts it carries.
type Event struct {
	EventID    string
	Type       string
	Source     string // "cli", "http", ...
	InvoiceID  string
	CustomerID string
	OccurredAt time.Time // clamped to now + the maximum clock skew when later
	Body       []byte    // the event as JSON

	Customer *Customer       // profile snapshot carried by the event, upserted (newest wins)
	Attempt  *PaymentAttempt // a charge attempt this event reports
	Invoice  *Invoice        // invoice facts this event reports
	// OptOut is the channel (email, sms) a dunning.opt_out withdraws the customer's consent
	// for: stored on the customer at once, so that no later run uses it either.
	OptOut string
}

// PaymentAttempt is one charge attempt of an invoice.
type PaymentAttempt struct {
	AttemptID   string
	Succeeded   bool
	FailureCode string
	AmountMinor int64
	Currency    string
}

// Invoice is an invoice as the events describe it.
type Invoice struct {
	AmountMinor int64
	Currency    string
	Status      string // open | paid | canceled
}

// RecordResult says what RecordEvent did.
type RecordResult struct {
	Duplicate   bool // the same event (same id and body) was already recorded
	DeliveredAt *time.Time
	// OccurredAt is the event's time as recorded: the producer's, or received_at + the
	// maximum clock skew when the producer's lay further in the future (then ClampedFrom
	// holds the producer's).
	OccurredAt  time.Time
	ClampedFrom time.Time
}

// Clamped reports whether the event's occurred_at was clamped.
func (r RecordResult) Clamped() bool { return !r.ClampedFrom.IsZero() }

// lockInvoice serialises, until tx ends, recording an invoice's events with deciding what
// its events start (see Claim.Route): a run is never started for an invoice whose settling
// event was recorded first.
func lockInvoice(ctx context.Context, tx pgx.Tx, invoiceID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('recoup:invoice:' || $1, 0))`, invoiceID); err != nil {
		return fmt.Errorf("lock invoice: %w", err)
	}
	return nil
}

// RecordEvent writes an event to the log exactly once, together with the facts it carries,
// in one transaction. Recording the same id and body again is a no-op reported as Duplicate;
// the same id with another body is ErrEventConflict. An occurred_at later than now + the
// maximum clock skew is recorded as that (the producer's value is kept).
func (s *Store) RecordEvent(ctx context.Context, e Event) (RecordResult, error) {
	var res RecordResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		res, err = s.recordEvent(ctx, tx, e)
		return err
	})
	return res, err
}

// recordEvent is RecordEvent inside the caller's transaction.
func (s *Store) recordEvent(ctx context.Context, tx pgx.Tx, e Event) (RecordResult, error) {
	var res RecordResult
	if err := lockInvoice(ctx, tx, e.InvoiceID); err != nil {
		return res, err
	}
	received, limit, err := s.readClock(ctx, tx)
	if err != nil {
		return res, err
	}
	res.OccurredAt = e.OccurredAt
	if e.OccurredAt.After(limit) {
		res.ClampedFrom, res.OccurredAt = e.OccurredAt, limit
	}
	at := res.OccurredAt
	customerID, err := eventCustomer(ctx, tx, e)
	if err != nil {
		return res, err
	}
	inserted, err := insertEvent(ctx, tx, e, customerID, at, res.ClampedFrom, received)
	if err != nil {
		return res, err
	}
	if !inserted {
		return res, readRecordedEvent(ctx, tx, e, &res)
	}
	if err := s.applyEventSnapshots(ctx, tx, e, at); err != nil {
		return res, err
	}
	if err := insertPaymentAttempt(ctx, tx, e, at); err != nil {
		return res, err
	}
	if e.OptOut != "" && customerID != "" {
		if err := lockCustomer(ctx, tx, customerID); err != nil {
			return res, err
		}
		if _, err := applyConsent(ctx, tx, consentStatement{CustomerID: customerID, Channel: e.OptOut,
			At: at, Source: optOutSource(e.Source), Evidence: e.EventID}); err != nil {
			return res, err
		}
	}
	if e.Invoice != nil && e.CustomerID != "" {
		return res, applyWaitingOptOuts(ctx, tx, e.InvoiceID, e.CustomerID)
	}
	return res, nil
}

// readClock returns the database's clock now (the event's received_at) and the latest
// occurred_at accepted, that plus the allowed clock skew.
func (s *Store) readClock(ctx context.Context, tx pgx.Tx) (received, limit time.Time, err error) {
	if err := tx.QueryRow(ctx, `SELECT t, t + $1::interval FROM (SELECT clock_timestamp() AS t) c`, s.maxSkew).Scan(&received, &limit); err != nil {
		return received, limit, fmt.Errorf("read the clock: %w", err)
	}
	return received, limit, nil
}

// eventCustomer returns the event's customer: the one it names or, for an opt-out that names
// none, the invoice's ("" when the invoice is not known).
func eventCustomer(ctx context.Context, tx pgx.Tx, e Event) (string, error) {
	customerID := e.CustomerID
	if customerID == "" && e.OptOut != "" {
		// An opt-out need not name the customer: the invoice's is the one.
		if err := tx.QueryRow(ctx, `SELECT customer_id FROM invoices WHERE invoice_id = $1`, e.InvoiceID).
			Scan(&customerID); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return customerID, fmt.Errorf("read the invoice's customer: %w", err)
		}
	}
	return customerID, nil
}

// insertEvent inserts the event into the log; false when an event of that ID was already there.
func insertEvent(ctx context.Context, tx pgx.Tx, e Event, customerID string, at, clampedFrom, received time.Time) (bool, error) {
	// received_at is the moment of recording under the invoice's lock (clock_timestamp,
	// not the transaction's start): ReserveSend orders sends against it.
	tag, err := tx.Exec(ctx, `
		INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, occurred_at_original, body, received_at)
		VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7, $8, $9)
		ON CONFLICT (event_id) DO NOTHING`,
		e.EventID, e.Type, e.Source, e.InvoiceID, customerID, at, nullTime(clampedFrom), e.Body, received)
	if err != nil {
		return false, fmt.Errorf("insert event: %w", err)
	}
	return tag.RowsAffected() != 0, nil
}

// readRecordedEvent fills res from the event already recorded under e's ID: a duplicate when
// its body is the same, ErrEventConflict when not.
func readRecordedEvent(ctx context.Context, tx pgx.Tx, e Event, res *RecordResult) error {
	var same bool
	var original *time.Time
	if err := tx.QueryRow(ctx,
		`SELECT body = $2::jsonb, delivered_at, occurred_at, occurred_at_original FROM events WHERE event_id = $1`,
		e.EventID, e.Body).Scan(&same, &res.DeliveredAt, &res.OccurredAt, &original); err != nil {
		return fmt.Errorf("read recorded event: %w", err)
	}
	res.ClampedFrom = time.Time{}
	if original != nil {
		res.ClampedFrom = *original
	}
	if !same {
		return ErrEventConflict
	}
	res.Duplicate = true
	return nil
}

// applyEventSnapshots records the customer and invoice the event carries, as of at.
func (s *Store) applyEventSnapshots(ctx context.Context, tx pgx.Tx, e Event, at time.Time) error {
	if c := e.Customer; c != nil {
		snap := *c
		if snap.UpdatedAt.IsZero() || snap.UpdatedAt.After(at) {
			snap.UpdatedAt = at
		}
		if _, err := s.upsertCustomer(ctx, tx, snap, ConsentSnapshot, e.EventID); err != nil {
			return err
		}
	}
	if inv := e.Invoice; inv != nil {
		if _, err := tx.Exec(ctx, `
			INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)
			ON CONFLICT (invoice_id) DO UPDATE SET
				status = CASE WHEN invoices.updated_at <= EXCLUDED.updated_at THEN EXCLUDED.status ELSE invoices.status END,
				amount_minor = CASE WHEN EXCLUDED.amount_minor > 0 THEN EXCLUDED.amount_minor ELSE invoices.amount_minor END,
				updated_at = GREATEST(invoices.updated_at, EXCLUDED.updated_at)`,
			e.InvoiceID, e.CustomerID, inv.AmountMinor, inv.Currency, inv.Status, at); err != nil {
			return fmt.Errorf("upsert invoice: %w", err)
		}
	}
	return nil
}

// insertPaymentAttempt records the payment attempt the event carries, if any.
func insertPaymentAttempt(ctx context.Context, tx pgx.Tx, e Event, at time.Time) error {
	a := e.Attempt
	if a == nil {
		return nil
	}
	outcome := "failed"
	if a.Succeeded {
		outcome = "succeeded"
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO payment_attempts (event_id, invoice_id, customer_id, attempt_id, outcome,
			failure_code, amount_minor, currency, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.EventID, e.InvoiceID, e.CustomerID, a.AttemptID, outcome, a.FailureCode,
		a.AmountMinor, a.Currency, at); err != nil {
		return fmt.Errorf("insert payment attempt: %w", err)
	}
	return nil
}

// optOutSource is the consent ledger's source of an opt-out recorded from source: the
// provider that reported it, or billing.
func optOutSource(source string) string {
	if source == ConsentSendGrid || source == ConsentTwilio {
		return source
	}
	return ConsentBillingEvent
}

// applyWaitingOptOuts applies the opt-outs of an invoice that were recorded before its
// customer was known (an opt-out need not name the customer), now that it is.
func applyWaitingOptOuts(ctx context.Context, tx pgx.Tx, invoiceID, customerID string) error {
	rows, err := tx.Query(ctx, `
		UPDATE events SET customer_id = $2
		WHERE invoice_id = $1 AND type = 'dunning.opt_out' AND customer_id IS NULL
		RETURNING event_id, COALESCE(lower(btrim(body->>'channel')), ''), occurred_at`, invoiceID, customerID)
	if err != nil {
		return fmt.Errorf("find the invoice's opt-outs: %w", err)
	}
	waiting, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (consentStatement, error) {
		st := consentStatement{CustomerID: customerID, Source: ConsentBillingEvent}
		err := r.Scan(&st.Evidence, &st.Channel, &st.At)
		return st, err
	})
	if err != nil {
		return fmt.Errorf("find the invoice's opt-outs: %w", err)
	}
	if len(waiting) == 0 {
		return nil
	}
	if err := lockCustomer(ctx, tx, customerID); err != nil {
		return err
	}
	for _, st := range waiting {
		if _, ok := consentColumns[st.Channel]; !ok {
			continue // not an opt-out Decode accepts
		}
		if _, err := applyConsent(ctx, tx, st); err != nil {
			return err
		}
	}
	return nil
}

// MarkDelivered records that an event reached its workflow.
func (s *Store) MarkDelivered(ctx context.Context, eventID string) error {
	_, err := s.pool.Exec(ctx,
		`UPDATE events SET delivered_at = now(), delivery_error = NULL WHERE event_id = $1 AND delivered_at IS NULL`, eventID)
	if err != nil {
		return fmt.Errorf("mark event delivered: %w", err)
	}
	return nil
}

// MarkDeliveryFailed records why an event could not be delivered yet. It stays undelivered
// and is due again after an exponential backoff (1 s doubling, at most 1 minute).
func (s *Store) MarkDeliveryFailed(ctx context.Context, eventID, reason string) error {
	return markDeliveryFailed(ctx, s.pool, eventID, reason)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func markDeliveryFailed(ctx context.Context, db execer, eventID, reason string) error {
	_, err := db.Exec(ctx, `
		UPDATE events SET delivery_error = $2, delivery_attempts = delivery_attempts + 1,
			next_attempt_at = now() + LEAST(interval '1 second' * power(2, LEAST(delivery_attempts, 10)), interval '1 minute')
		WHERE event_id = $1`, eventID, reason)
	if err != nil {
		return fmt.Errorf("mark event delivery failed: %w", err)
	}
	return nil
}

// IsNotFound reports whether err means a row was missing.
func IsNotFound(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// RecordRejected keeps an event that was refused for its content, with the reason.
func (s *Store) RecordRejected(ctx context.Context, source, reason string, body []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO rejected_events (source, reason, body) VALUES ($1, $2, $3)`, source, reason, body)
	if err != nil {
		return fmt.Errorf("record rejected event: %w", err)
	}
	return nil
}

// RejectedEvent is an event refused for its content.
type RejectedEvent struct {
	ID         int64
	Source     string
	Reason     string
	Body       []byte
	ReceivedAt time.Time
}

// Rejected lists the newest refused events of a source (all sources when source is empty).
func (s *Store) Rejected(ctx context.Context, source string, limit int) ([]RejectedEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, source, reason, body, received_at FROM rejected_events
		WHERE $1 = '' OR source = $1 ORDER BY id DESC LIMIT $2`, source, limit)
	if err != nil {
		return nil, fmt.Errorf("list rejected events: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RejectedEvent, error) {
		var e RejectedEvent
		err := r.Scan(&e.ID, &e.Source, &e.Reason, &e.Body, &e.ReceivedAt)
		return e, err
	})
}

// Backlog is how many accepted events wait for delivery and how long the oldest has waited
// (events parked until their invoice has a run do not count).
func (s *Store) Backlog(ctx context.Context) (count int, oldest time.Duration, err error) {
	var secs float64
	err = s.pool.QueryRow(ctx, `
		SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float8
		FROM events WHERE delivered_at IS NULL AND parked_at IS NULL`).Scan(&count, &secs)
	if err != nil {
		return 0, 0, fmt.Errorf("event backlog: %w", err)
	}
	return count, time.Duration(secs * float64(time.Second)), nil
}
