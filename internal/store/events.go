package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event is an accepted event as written to the event log, with the facts it carries.
type Event struct {
	EventID    string
	Type       string
	Source     string // "cli", "http", ...
	InvoiceID  string
	CustomerID string
	OccurredAt time.Time
	Body       []byte // the event as JSON

	Customer *Customer       // profile snapshot carried by the event, upserted (newest wins)
	Attempt  *PaymentAttempt // a charge attempt this event reports
	Invoice  *Invoice        // invoice facts this event reports
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
}

// RecordEvent writes an event to the log exactly once, together with the facts it carries,
// in one transaction. Recording the same id and body again is a no-op reported as Duplicate;
// the same id with another body is ErrEventConflict.
func (s *Store) RecordEvent(ctx context.Context, e Event) (RecordResult, error) {
	var res RecordResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
			VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7)
			ON CONFLICT (event_id) DO NOTHING`,
			e.EventID, e.Type, e.Source, e.InvoiceID, e.CustomerID, e.OccurredAt, e.Body)
		if err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var same bool
			if err := tx.QueryRow(ctx,
				`SELECT body = $2::jsonb, delivered_at FROM events WHERE event_id = $1`,
				e.EventID, e.Body).Scan(&same, &res.DeliveredAt); err != nil {
				return fmt.Errorf("read recorded event: %w", err)
			}
			if !same {
				return ErrEventConflict
			}
			res.Duplicate = true
			return nil
		}
		if e.Customer != nil {
			if _, err := upsertCustomer(ctx, tx, *e.Customer); err != nil {
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
				e.InvoiceID, e.CustomerID, inv.AmountMinor, inv.Currency, inv.Status, e.OccurredAt); err != nil {
				return fmt.Errorf("upsert invoice: %w", err)
			}
		}
		if a := e.Attempt; a != nil {
			outcome := "failed"
			if a.Succeeded {
				outcome = "succeeded"
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO payment_attempts (event_id, invoice_id, customer_id, attempt_id, outcome,
					failure_code, amount_minor, currency, occurred_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				e.EventID, e.InvoiceID, e.CustomerID, a.AttemptID, outcome, a.FailureCode,
				a.AmountMinor, a.Currency, e.OccurredAt); err != nil {
				return fmt.Errorf("insert payment attempt: %w", err)
			}
		}
		return nil
	})
	return res, err
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
	_, err := s.pool.Exec(ctx, `
		UPDATE events SET delivery_error = $2, delivery_attempts = delivery_attempts + 1,
			next_attempt_at = now() + LEAST(interval '1 second' * power(2, LEAST(delivery_attempts, 10)), interval '1 minute')
		WHERE event_id = $1`, eventID, reason)
	if err != nil {
		return fmt.Errorf("mark event delivery failed: %w", err)
	}
	return nil
}

// UndeliveredEvent is an accepted event not yet delivered to Temporal.
type UndeliveredEvent struct {
	EventID    string
	InvoiceID  string
	Type       string
	Body       []byte
	ReceivedAt time.Time
}

// Undelivered lists up to limit accepted events not yet delivered and due, oldest first by
// occurred_at within an invoice. Invoices come in the order their first undelivered event
// was received.
func (s *Store) Undelivered(ctx context.Context, limit int) ([]UndeliveredEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT event_id, invoice_id, type, body, received_at FROM events WHERE delivered_at IS NULL AND next_attempt_at <= now()
		ORDER BY min(received_at) OVER (PARTITION BY invoice_id), invoice_id, occurred_at, received_at, event_id
		LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list undelivered events: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (UndeliveredEvent, error) {
		var u UndeliveredEvent
		err := r.Scan(&u.EventID, &u.InvoiceID, &u.Type, &u.Body, &u.ReceivedAt)
		return u, err
	})
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

// Backlog is how many accepted events wait for delivery and how long the oldest has waited.
func (s *Store) Backlog(ctx context.Context) (count int, oldest time.Duration, err error) {
	var secs float64
	err = s.pool.QueryRow(ctx, `
		SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(received_at)), 0)::float8
		FROM events WHERE delivered_at IS NULL`).Scan(&count, &secs)
	if err != nil {
		return 0, 0, fmt.Errorf("event backlog: %w", err)
	}
	return count, time.Duration(secs * float64(time.Second)), nil
}

// SettledBy returns the id of an event that settled the invoice (payment.recovered,
// payment.retry_succeeded or dunning.cancel) at or after t, if the log holds one: such an
// event, even if it arrived first, means a payment.failed at t must not start dunning.
func (s *Store) SettledBy(ctx context.Context, invoiceID string, t time.Time) (string, bool, error) {
	var id string
	err := s.pool.QueryRow(ctx, `
		SELECT event_id FROM events
		WHERE invoice_id = $1 AND type IN ('payment.recovered', 'payment.retry_succeeded', 'dunning.cancel')
			AND occurred_at >= $2
		ORDER BY occurred_at LIMIT 1`, invoiceID, t).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("check whether the invoice was settled: %w", err)
	}
	return id, true, nil
}
