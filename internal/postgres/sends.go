package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Send statuses (see the sends table in migrations/00001_init.sql).
const (
	SendReserved  = "reserved"
	SendSent      = "sent"
	SendLogged    = "logged"
	SendRetry     = "retry"
	SendFailed    = "failed"
	SendReconcile = "reconcile"
	// SendSuperseded: a reconcile row no provider event named within the reconcile window:
	// the provider never accepted it, and the step's message was sent again under
	// recoup.ResendKey (see ClaimResend).
	SendSuperseded = "superseded"
)

// Reservation describes a message about to be handed to a provider.
type Reservation struct {
	Key        string // "<workflow id>/step-<n>/<channel>"
	WorkflowID string
	Step       int
	Channel    string
	CustomerID string
	InvoiceID  string
	Subject    string
	Body       string // rendered text, kept for support and for log delivery mode
	ResendOf   string // the original key when this is a step's resend (ClaimResend)
}

// SendRow is the stored state of a send.
type SendRow struct {
	Key               string
	Status            string
	ProviderMessageID string
	Attempts          int
	Error             string
	// Reconciled is true when this ReserveSend call found an earlier attempt's unfinished
	// reservation and marked it SendReconcile (false when it already was).
	Reconciled bool
}

// ReserveSend claims the right to call the provider for r.Key.
//
// claimed is true when the caller holds a fresh reservation (first attempt, or an earlier
// attempt that the provider definitely did not accept): it must call the provider and then
// CompleteSend, ReleaseSend or FailSend. Otherwise row holds the earlier outcome and the
// provider must not be called. A reservation left by an earlier attempt whose outcome is
// unknown (the worker died mid-call) is turned into SendReconcile here.
//
// A fresh reservation is refused with a *SendBarredError when the invoice was settled (a
// payment.recovered, payment.retry_succeeded or dunning.cancel recorded since the run
// started, whether or not it has reached the run yet) or the customer withdrew consent to
// the channel. The check holds the invoice's and the customer's record locks, the same ones
// that recording such an event takes, so one of the two comes first: an event recorded
// before the reservation bars it; a reservation made first is a message already on its way.
func (s *Store) ReserveSend(ctx context.Context, r Reservation) (row SendRow, claimed bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		row, claimed = SendRow{}, false
		// The locks also serialise concurrent attempts at one key: each reads what the
		// one before it left. A customer import holds customer locks until it commits: wait
		// at most a few seconds (the attempt is retried), never holding the invoice's lock,
		// and so billing's events, behind it.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '3s'`); err != nil {
			return fmt.Errorf("reserve send: %w", err)
		}
		if err := lockInvoice(ctx, tx, r.InvoiceID); err != nil {
			return err
		}
		if err := lockCustomer(ctx, tx, r.CustomerID); err != nil {
			return err
		}
		existing, err := scanSend(tx.QueryRow(ctx, `
			SELECT idempotency_key, status, provider_message_id, attempts, error FROM sends WHERE idempotency_key = $1`, r.Key))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read send: %w", err)
		case existing.Status == SendReserved:
			row, err = scanSend(tx.QueryRow(ctx, `
				UPDATE sends SET status = 'reconcile', error = 'earlier attempt ended with unknown outcome', updated_at = now()
				WHERE idempotency_key = $1 AND status = 'reserved'
				RETURNING idempotency_key, status, provider_message_id, attempts, error`, r.Key))
			if err != nil {
				return fmt.Errorf("mark send for reconciliation: %w", err)
			}
			row.Reconciled = true
			return nil
		case existing.Status != SendRetry:
			row = existing
			return nil
		}
		if existing.Status == SendRetry {
			// The provider answered that it did not take the message, yet an event of
			// its names the key: it did. Settle it as sent instead of sending again.
			var settled bool
			if row, settled, err = settleFromEvidence(ctx, tx, r.Key); err != nil || settled {
				return err
			}
		}
		if r.ResendOf != "" {
			// A resend goes only while its original stays superseded: an event that named
			// the original since ClaimResend settled it as sent (the provider had it).
			var settled bool
			if row, settled, err = originalSettled(ctx, tx, r.ResendOf); err != nil || settled {
				return err
			}
		}
		if err := sendBarred(ctx, tx, r); err != nil {
			return err
		}
		// claimed_at: the moment of this claim (a reclaim after a refused attempt moves it),
		// after the locks (clock_timestamp, not the transaction's start), so that it orders
		// against the events' received_at.
		tag, err := tx.Exec(ctx, `
			INSERT INTO sends (idempotency_key, workflow_id, step, channel, customer_id, invoice_id, status, subject, body, created_at, updated_at, claimed_at, resend_of)
			VALUES ($1, $2, $3, $4, $5, $6, 'reserved', $7, $8, clock_timestamp(), clock_timestamp(), clock_timestamp(), NULLIF($9, ''))
			ON CONFLICT (idempotency_key) DO NOTHING`,
			r.Key, r.WorkflowID, r.Step, r.Channel, r.CustomerID, r.InvoiceID, r.Subject, r.Body, r.ResendOf)
		if err != nil {
			return fmt.Errorf("reserve send: %w", err)
		}
		if tag.RowsAffected() == 1 {
			row, claimed = SendRow{Key: r.Key, Status: SendReserved, Attempts: 1}, true
			return nil
		}
		row, err = scanSend(tx.QueryRow(ctx, `
			UPDATE sends SET status = 'reserved', attempts = attempts + 1, subject = $2, body = $3,
				updated_at = clock_timestamp(), claimed_at = clock_timestamp()
			WHERE idempotency_key = $1 AND status = 'retry'
			RETURNING idempotency_key, status, provider_message_id, attempts, error`, r.Key, r.Subject, r.Body))
		if err != nil {
			return fmt.Errorf("reclaim send: %w", err)
		}
		claimed = true
		return nil
	})
	if err != nil {
		return SendRow{}, false, err
	}
	return row, claimed, nil
}

// originalSettled reads the original of a resend: settled when it is no longer superseded
// (an event named it since ClaimResend: the provider accepted it), with its row, which is
// then the step's outcome. The caller holds the invoice's and the customer's locks, which
// applying a provider event takes too.
func originalSettled(ctx context.Context, tx pgx.Tx, key string) (SendRow, bool, error) {
	row, err := scanSend(tx.QueryRow(ctx, `
		SELECT idempotency_key, status, provider_message_id, attempts, error FROM sends WHERE idempotency_key = $1`, key))
	if err != nil {
		return SendRow{}, false, fmt.Errorf("read the resend's original %s: %w", key, err)
	}
	if row.Status == SendSuperseded {
		return SendRow{}, false, nil
	}
	return row, true, nil
}

// SettledError says that a settling event (payment.recovered, payment.retry_succeeded,
// payment.succeeded, dunning.cancel) was recorded for the invoice since the run started, whether or not it has
// reached the run yet: the run may send nothing more, nor end exhausted.
type SettledError struct {
	EventID, Type string
}

func (e *SettledError) Error() string {
	return fmt.Sprintf("the invoice was settled by %s event %s, recorded since this run started", e.Type, e.EventID)
}

// SendBarredError is why a send may not be reserved although the invoice is not settled:
// the customer withdrew consent to the channel.
type SendBarredError struct {
	Reason string
}

func (e *SendBarredError) Error() string { return e.Reason }

// settledSinceStart returns a *SettledError when a settling event was recorded for the
// invoice since run runKey started. The caller holds the invoice's lock, which recording an
// event takes too.
func settledSinceStart(ctx context.Context, tx pgx.Tx, invoiceID, runKey string) error {
	var e SettledError
	err := tx.QueryRow(ctx, `
		SELECT event_id, type FROM events
		WHERE invoice_id = $1 AND type = ANY($3)
			AND received_at >= COALESCE(
				(SELECT created_at FROM invoice_runs WHERE run_key = $2),
				(SELECT started_at FROM dunning_runs WHERE workflow_id = $2),
				'infinity')
		ORDER BY received_at LIMIT 1`, invoiceID, runKey, settlingTypes).Scan(&e.EventID, &e.Type)
	if err == nil {
		return &e
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check whether the invoice was settled: %w", err)
	}
	return nil
}

// sendBarred returns a *SettledError or a *SendBarredError when r may not be sent (see
// ReserveSend). The caller holds the invoice's and the customer's locks.
func sendBarred(ctx context.Context, tx pgx.Tx, r Reservation) error {
	if err := settledSinceStart(ctx, tx, r.InvoiceID, r.WorkflowID); err != nil {
		return err
	}
	cols, ok := consentColumns[r.Channel]
	if !ok {
		return fmt.Errorf("reserve send: unknown channel %q", r.Channel)
	}
	var consent *bool
	err := tx.QueryRow(ctx, `SELECT `+cols[0]+` FROM customers WHERE customer_id = $1`, r.CustomerID).Scan(&consent)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check the customer's consent: %w", err)
	}
	if consent != nil && !*consent {
		return &SendBarredError{Reason: fmt.Sprintf("customer %s has withdrawn consent to %s; not sent", r.CustomerID, r.Channel)}
	}
	return nil
}

func scanSend(r pgx.Row) (SendRow, error) {
	var x SendRow
	err := r.Scan(&x.Key, &x.Status, &x.ProviderMessageID, &x.Attempts, &x.Error)
	return x, err
}

// GetSend returns the stored state of a send.
func (s *Store) GetSend(ctx context.Context, key string) (SendRow, error) {
	row, err := scanSend(s.pool.QueryRow(ctx, `
		SELECT idempotency_key, status, provider_message_id, attempts, error FROM sends WHERE idempotency_key = $1`, key))
	if err != nil {
		return SendRow{}, fmt.Errorf("get send: %w", err)
	}
	return row, nil
}

// CompleteSend records a provider acceptance (SendSent) or a log-mode delivery (SendLogged).
func (s *Store) CompleteSend(ctx context.Context, key, status, providerMessageID string) error {
	return s.setSend(ctx, key, status, providerMessageID, "")
}

// ReleaseSend records that the provider definitely did not accept the message, so a later
// attempt may claim the key again.
func (s *Store) ReleaseSend(ctx context.Context, key, reason string) error {
	return s.setSend(ctx, key, SendRetry, "", reason)
}

// FailSend records a definite rejection.
func (s *Store) FailSend(ctx context.Context, key, reason string) error {
	return s.setSend(ctx, key, SendFailed, "", reason)
}

// ReconcileSend records that the outcome of a call is unknown.
func (s *Store) ReconcileSend(ctx context.Context, key, reason string) error {
	return s.setSend(ctx, key, SendReconcile, "", reason)
}

// setSend moves a reservation to its outcome. A definite outcome (sent, logged, failed) also
// settles a send that another attempt already marked for reconciliation: that happens when
// Temporal starts a new attempt while a timed-out one is still talking to the provider.
func (s *Store) setSend(ctx context.Context, key, status, providerID, reason string) error {
	definite := status == SendSent || status == SendLogged || status == SendFailed
	tag, err := s.pool.Exec(ctx, `
		UPDATE sends SET status = $2, provider_message_id = $3, error = $4, updated_at = now()
		WHERE idempotency_key = $1 AND (status = 'reserved' OR ($5 AND status = 'reconcile'))`,
		key, status, providerID, reason, definite)
	if err != nil {
		return fmt.Errorf("update send %s: %w", status, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update send %s: key %q holds no reservation", status, key)
	}
	return nil
}

// CountSends counts the dunning messages a customer was sent (or may have been: sent,
// logged, reconcile) since t, across all runs.
func (s *Store) CountSends(ctx context.Context, customerID string, t time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM sends WHERE customer_id = $1 AND created_at >= $2
			AND status IN ('sent', 'logged', 'reconcile', 'reserved')`, customerID, t).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count recent sends: %w", err)
	}
	return n, nil
}

// OfferedSince sums the incentives of one kind offered to a customer since t.
func (s *Store) OfferedSince(ctx context.Context, customerID, kind string, t time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT COALESCE(sum(value), 0) FROM offers WHERE customer_id = $1 AND kind = $2 AND created_at >= $3`,
		customerID, kind, t).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sum offered incentives: %w", err)
	}
	return n, nil
}

// settleFromEvidence marks a send sent when a provider event names its key; settled says
// whether one did (row is then the settled send).
func settleFromEvidence(ctx context.Context, tx pgx.Tx, key string) (SendRow, bool, error) {
	row, err := scanSend(tx.QueryRow(ctx, `
		UPDATE sends SET status = 'sent', evidence = 'provider events name it', error = '', updated_at = now()
		WHERE idempotency_key = $1 AND EXISTS (SELECT 1 FROM provider_events WHERE idempotency_key = $1)
		RETURNING idempotency_key, status, provider_message_id, attempts, error`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return SendRow{}, false, nil
	}
	if err != nil {
		return SendRow{}, false, fmt.Errorf("settle the send from evidence: %w", err)
	}
	return row, true, nil
}

// SMSSentBefore reports whether any SMS was ever sent (or may have been: reserved,
// reconcile) to a customer, in any run: the approval policy's first_sms rule.
func (s *Store) SMSSentBefore(ctx context.Context, customerID string) (bool, error) {
	var sent bool
	err := s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM sends WHERE customer_id = $1 AND channel = 'sms'
			AND status IN ('sent', 'logged', 'reconcile', 'reserved', 'superseded'))`, customerID).Scan(&sent)
	if err != nil {
		return false, fmt.Errorf("look up earlier SMS: %w", err)
	}
	return sent, nil
}
