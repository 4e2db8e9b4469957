package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup/internal/model/replies"
)

// ConsentReply is the consent-ledger source of a customer's STOP or START reply.
const ConsentReply = "reply"

// InboundReply is one reply to record. Sender (a phone number in E.164 or an email address)
// only finds the customer: it is neither stored nor logged.
type InboundReply struct {
	EventID    string
	Provider   string // twilio | sendgrid
	Channel    string // sms | email
	Sender     string
	Keyword    string // "" | stop | start | help
	Text       string // masked, bounded
	ReceivedAt time.Time
	// Unverified: the provider's checks (SPF, DKIM) do not vouch for the sender. Recorded,
	// but matched to no customer: no consent change, no delivery to any run.
	Unverified bool
}

// RecordedReply is what recording a reply did.
type RecordedReply struct {
	EventID    string
	CustomerID string // "" when no profile has the sender's address
	Keyword    string
	Channel    string
	Text       string
	ReceivedAt time.Time
	Duplicate  bool // already recorded (a provider's retry)
	Delivered  bool
	Note       string
	// ConsentChanged: a STOP or START changed the customer's stored consent.
	ConsentChanged bool
	// Outcome, when recording closed the reply at once: ambiguous (several customers share
	// the sender's address), shared_number (a STOP or START applied to each of them) or
	// unverified. "" otherwise.
	Outcome string
}

// RecordReply records a reply exactly once, finding its customers by the sender's address,
// and, for an SMS STOP or START, stores the consent statement (source reply, the reply as
// its evidence) in the same transaction for EVERY customer whose profile has that number
// (carrier rules are per number), so that an opt-out is in force for every later send of
// every run of each of them as soon as the provider has its 2xx. Carrier keywords are SMS
// rules: an email reply is free text whatever it says (email unsubscribes come from the
// email provider's unsubscribe events). A reply whose sender matches several customers is
// attributed to none of them: it is recorded as ambiguous, delivered to no run, and left
// for support (its delivery note says so).
func (s *Store) RecordReply(ctx context.Context, r InboundReply) (RecordedReply, error) {
	if r.Channel == "email" {
		r.Keyword = ""
	}
	out := RecordedReply{EventID: r.EventID, Keyword: r.Keyword, Channel: r.Channel, Text: r.Text, ReceivedAt: r.ReceivedAt}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		custs, err := matchCustomers(ctx, tx, r.Channel, r.Sender)
		if err != nil {
			return err
		}
		cust, note, outcome := "", "", ""
		switch {
		case r.Unverified:
			custs, outcome = nil, "unverified"
			note = "unverified sender (neither SPF nor DKIM passed for its domain): not the customer's reply; delivered to no run"
		case len(custs) == 1:
			cust = custs[0]
		case len(custs) > 1 && (r.Keyword == string(replies.KeywordStop) || r.Keyword == string(replies.KeywordStart)):
			outcome = "shared_number"
			note = fmt.Sprintf("%s from a number shared by %d customers: consent stored for each of them; delivered to no run",
				strings.ToUpper(r.Keyword), len(custs))
		case len(custs) > 1:
			outcome = "ambiguous"
			note = fmt.Sprintf("ambiguous sender: %d customers share the sender's address; delivered to no run, left for support", len(custs))
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO inbound_replies (event_id, provider, channel, customer_id, keyword, text, received_at, delivered_at, delivery_note)
			VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7, CASE WHEN $8 = '' THEN NULL ELSE now() END, $8)
			ON CONFLICT (event_id) DO NOTHING`,
			r.EventID, r.Provider, r.Channel, cust, r.Keyword, r.Text, r.ReceivedAt, note)
		if err != nil {
			return fmt.Errorf("record reply: %w", err)
		}
		if tag.RowsAffected() == 0 {
			out.Duplicate = true
			return tx.QueryRow(ctx, `
				SELECT COALESCE(customer_id, ''), keyword, channel, text, received_at, delivered_at IS NOT NULL, delivery_note
				FROM inbound_replies WHERE event_id = $1`, r.EventID).Scan(
				&out.CustomerID, &out.Keyword, &out.Channel, &out.Text, &out.ReceivedAt, &out.Delivered, &out.Note)
		}
		out.CustomerID, out.Delivered, out.Note, out.Outcome = cust, note != "", note, outcome
		if len(custs) == 0 || (r.Keyword != string(replies.KeywordStop) && r.Keyword != string(replies.KeywordStart)) {
			return nil
		}
		for _, c := range custs { // sorted: locks are taken in one order
			if err := lockCustomer(ctx, tx, c); err != nil {
				return err
			}
			changed, err := applyConsent(ctx, tx, consentStatement{CustomerID: c, Channel: r.Channel,
				Consent: r.Keyword == string(replies.KeywordStart), At: r.ReceivedAt, Source: ConsentReply, Evidence: r.EventID})
			if err != nil {
				return err
			}
			out.ConsentChanged = out.ConsentChanged || changed
		}
		return nil
	})
	return out, err
}

// matchCustomers finds every customer whose profile has the sender's phone (sms) or email
// (email, case-insensitive), in customer_id order. None when the sender is empty.
func matchCustomers(ctx context.Context, tx pgx.Tx, channel, sender string) ([]string, error) {
	if sender == "" {
		return nil, nil
	}
	q := `SELECT customer_id FROM customers WHERE phone = $1 ORDER BY customer_id`
	if channel == "email" {
		q = `SELECT customer_id FROM customers WHERE lower(email) = lower($1) ORDER BY customer_id`
	}
	rows, err := tx.Query(ctx, q, sender)
	if err != nil {
		return nil, fmt.Errorf("find the reply's customers: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find the reply's customers: %w", err)
	}
	return ids, nil
}

// ReplyParkWindow bounds how long a reply of a customer without an open run waits for one:
// a run opened (its failure occurred) within this time after the reply was received hears
// it; a reply with no such run after this time is closed for support.
const ReplyParkWindow = 7 * 24 * time.Hour

// OpenRunInvoices lists the invoices of a customer with an open dunning run.
func (s *Store) OpenRunInvoices(ctx context.Context, customerID string) ([]string, error) {
	return s.OpenRunInvoicesFor(ctx, customerID, time.Time{})
}

// OpenRunInvoicesFor lists the invoices of a customer with an open dunning run that a reply
// received at receivedAt may reach: every open run, but a run opened more than
// ReplyParkWindow after the reply does not hear it. A zero receivedAt: every open run.
func (s *Store) OpenRunInvoicesFor(ctx context.Context, customerID string, receivedAt time.Time) ([]string, error) {
	var until *time.Time
	if !receivedAt.IsZero() {
		u := receivedAt.Add(ReplyParkWindow)
		until = &u
	}
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT r.invoice_id FROM invoice_runs r JOIN invoices i ON i.invoice_id = r.invoice_id
		WHERE i.customer_id = $1 AND r.status = 'open' AND ($2::timestamptz IS NULL OR r.opened_at <= $2)
		ORDER BY r.invoice_id`, customerID, until)
	if err != nil {
		return nil, fmt.Errorf("open runs of the customer: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// UndeliveredReplies lists recorded replies not yet delivered that there is something to do
// with, oldest first: those of no customer, those whose customer has an open run, and those
// parked longer than ReplyParkWindow (to close). A reply of a customer without an open run
// waits, parked, out of this list, so that parked replies never crowd out the rest.
func (s *Store) UndeliveredReplies(ctx context.Context, limit int) ([]RecordedReply, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT event_id, COALESCE(customer_id, ''), keyword, channel, text, received_at
		FROM inbound_replies x WHERE delivered_at IS NULL AND (customer_id IS NULL
			OR received_at < now() - make_interval(secs => $2)
			OR EXISTS (SELECT 1 FROM invoice_runs r JOIN invoices i ON i.invoice_id = r.invoice_id
				WHERE i.customer_id = x.customer_id AND r.status = 'open'))
		ORDER BY received_at, event_id LIMIT $1`, limit, ReplyParkWindow.Seconds())
	if err != nil {
		return nil, fmt.Errorf("undelivered replies: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RecordedReply, error) {
		var x RecordedReply
		err := r.Scan(&x.EventID, &x.CustomerID, &x.Keyword, &x.Channel, &x.Text, &x.ReceivedAt)
		return x, err
	})
}

// ParkedReplies counts the replies of matched customers waiting for a run to open.
func (s *Store) ParkedReplies(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM inbound_replies x WHERE delivered_at IS NULL AND customer_id IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM invoice_runs r JOIN invoices i ON i.invoice_id = r.invoice_id
			WHERE i.customer_id = x.customer_id AND r.status = 'open')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("parked replies: %w", err)
	}
	return n, nil
}

// MarkReplyDelivered records that a reply reached every open run of its customer.
func (s *Store) MarkReplyDelivered(ctx context.Context, eventID, note string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE inbound_replies SET delivered_at = now(), delivery_note = $2 WHERE event_id = $1`, eventID, note); err != nil {
		return fmt.Errorf("mark reply delivered: %w", err)
	}
	return nil
}

// replyDeliveryLock is the advisory lock that lets one relay at a time deliver replies, in
// the order they were received.
const replyDeliveryLock = "recoup:reply-delivery"

// WithReplyDeliveryLock runs fn while holding the reply-delivery lock; ran is false (and fn
// not called) when another process holds it.
func (s *Store) WithReplyDeliveryLock(ctx context.Context, fn func() error) (ran bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("reply delivery lock: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1 || current_schema(), 0))`, replyDeliveryLock).Scan(&got); err != nil {
		return false, fmt.Errorf("reply delivery lock: %w", err)
	}
	if !got {
		return false, nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1 || current_schema(), 0))`, replyDeliveryLock) //nolint:errcheck
	return true, fn()
}
