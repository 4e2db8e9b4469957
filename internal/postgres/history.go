package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// History is what Recoup knows of a customer when it decides a step.
type History struct {
	Customer Customer
	Payments []PaymentRecord // newest first, at most 50
	Runs     []RunRecord     // earlier dunning runs, newest first, at most 20
	Messages []MessageRecord // earlier dunning messages, newest first, at most 50
}

// PaymentRecord is one charge attempt in the history.
type PaymentRecord struct {
	InvoiceID   string
	Succeeded   bool
	FailureCode string
	AmountMinor int64
	Currency    string
	OccurredAt  time.Time
}

// RunRecord is an earlier (or the current) dunning run.
type RunRecord struct {
	WorkflowID string
	InvoiceID  string
	Outcome    string // empty while running
	Steps      int
	StartedAt  time.Time
}

// MessageRecord is one dunning message sent (or attempted) earlier.
type MessageRecord struct {
	WorkflowID string
	Step       int
	Channel    string
	Status     string
	CreatedAt  time.Time
}

// CustomerHistory loads the profile and history of a customer; ErrUnknownCustomer when
// there is no profile.
func (s *Store) CustomerHistory(ctx context.Context, customerID string) (History, error) {
	c, err := s.GetCustomer(ctx, customerID)
	if err != nil {
		return History{}, err
	}
	h := History{Customer: c}
	rows, err := s.pool.Query(ctx, `
		SELECT invoice_id, outcome = 'succeeded', failure_code, amount_minor, currency, occurred_at
		FROM payment_attempts WHERE customer_id = $1 ORDER BY occurred_at DESC LIMIT 50`, customerID)
	if err != nil {
		return History{}, fmt.Errorf("load payments: %w", err)
	}
	if h.Payments, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (PaymentRecord, error) {
		var p PaymentRecord
		err := r.Scan(&p.InvoiceID, &p.Succeeded, &p.FailureCode, &p.AmountMinor, &p.Currency, &p.OccurredAt)
		return p, err
	}); err != nil {
		return History{}, fmt.Errorf("load payments: %w", err)
	}
	rows, err = s.pool.Query(ctx, `
		SELECT workflow_id, invoice_id, COALESCE(outcome, ''), steps, started_at
		FROM dunning_runs WHERE customer_id = $1 ORDER BY started_at DESC LIMIT 20`, customerID)
	if err != nil {
		return History{}, fmt.Errorf("load runs: %w", err)
	}
	if h.Runs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (RunRecord, error) {
		var x RunRecord
		err := r.Scan(&x.WorkflowID, &x.InvoiceID, &x.Outcome, &x.Steps, &x.StartedAt)
		return x, err
	}); err != nil {
		return History{}, fmt.Errorf("load runs: %w", err)
	}
	rows, err = s.pool.Query(ctx, `
		SELECT workflow_id, step, channel, status, created_at
		FROM sends WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 50`, customerID)
	if err != nil {
		return History{}, fmt.Errorf("load messages: %w", err)
	}
	if h.Messages, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (MessageRecord, error) {
		var m MessageRecord
		err := r.Scan(&m.WorkflowID, &m.Step, &m.Channel, &m.Status, &m.CreatedAt)
		return m, err
	}); err != nil {
		return History{}, fmt.Errorf("load messages: %w", err)
	}
	return h, nil
}

// StartRun records a run (idempotent). runKey is recoup.RunKey(workflow ID, episode): the
// run's key in dunning_runs (its workflow_id column), decisions, sends and offers. A run
// started without the relay (no payment.failed opened it) is added to the invoice's runs.
func (s *Store) StartRun(ctx context.Context, runKey, invoiceID, customerID string, startedAt time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, started_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (workflow_id) DO NOTHING`,
			runKey, invoiceID, customerID, startedAt); err != nil {
			return fmt.Errorf("record run start: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO invoice_runs (invoice_id, episode, run_key, status, opened_at)
			VALUES ($1, $2, $3, 'open', $4) ON CONFLICT DO NOTHING`,
			invoiceID, episodeOf(runKey), runKey, startedAt); err != nil {
			return fmt.Errorf("record run start: %w", err)
		}
		return nil
	})
}

// RecordHoldout records the run's holdout arm ("control", "treatment" or "" when the holdout
// is off) and, for the control arm, its treatment, unless an arm was recorded before: the
// first recorded arm stays, so that a policy edit never moves a running run to the other
// arm. It returns the arm and treatment in force. The run must have been started (StartRun).
func (s *Store) RecordHoldout(ctx context.Context, runKey, arm, treatment string) (string, string, error) {
	if arm != "control" {
		treatment = ""
	}
	var gotArm, gotTreatment string
	err := s.pool.QueryRow(ctx, `
		UPDATE dunning_runs SET holdout = $2, holdout_treatment = $3
		 WHERE workflow_id = $1 AND holdout = ''
		RETURNING holdout, holdout_treatment`, runKey, arm, treatment).Scan(&gotArm, &gotTreatment)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, `SELECT holdout, holdout_treatment FROM dunning_runs WHERE workflow_id = $1`,
			runKey).Scan(&gotArm, &gotTreatment)
	}
	if err != nil {
		return "", "", fmt.Errorf("record the run's holdout arm: %w", err)
	}
	return gotArm, gotTreatment, nil
}

// RunHoldout returns the run's recorded holdout arm and, for the control arm, its treatment
// ("", "" for a run not recorded or recorded while the holdout was off).
func (s *Store) RunHoldout(ctx context.Context, runKey string) (arm, treatment string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT holdout, holdout_treatment FROM dunning_runs WHERE workflow_id = $1`,
		runKey).Scan(&arm, &treatment)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read the run's holdout arm: %w", err)
	}
	return arm, treatment, nil
}

// FinishRun records a run's outcome (idempotent: the first outcome stays) and closes the
// run's episode of the invoice at endedAt: from then on, only a payment failure that occurs
// after endedAt starts another run for the invoice. runKey is as for StartRun.
//
// An exhausted outcome is refused with a *SettledError when a settling event was recorded for
// the invoice since the run started and has not reached it yet (the relay is behind): billing
// must not be told "exhausted" for an invoice it reported paid or canceled.
func (s *Store) FinishRun(ctx context.Context, runKey, invoiceID, customerID, outcome, reason string, steps int, endedAt time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockInvoice(ctx, tx, invoiceID); err != nil {
			return err
		}
		if outcome == "exhausted" {
			if err := settledSinceStart(ctx, tx, invoiceID, runKey); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, reason, steps, started_at, ended_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
			ON CONFLICT (workflow_id) DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason,
				steps = EXCLUDED.steps, ended_at = EXCLUDED.ended_at
			WHERE dunning_runs.outcome IS NULL`,
			runKey, invoiceID, customerID, outcome, reason, steps, endedAt); err != nil {
			return fmt.Errorf("record run outcome: %w", err)
		}
		if outcome == "recovered" {
			// How it was recovered, as known at the run's end (migration 00016,
			// recoup_run_attribution): a snapshot. The report derives it again when it reads
			// the runs, so provider and billing events that arrive later still count. The
			// first snapshot stays.
			if _, err := tx.Exec(ctx, `
				UPDATE dunning_runs d
				   SET (attribution, recovered_at, attributed_step, attributed_channel) =
				       (SELECT * FROM recoup_run_attribution(d.workflow_id))
				 WHERE d.workflow_id = $1 AND d.outcome = 'recovered' AND d.attribution = ''`, runKey); err != nil {
				return fmt.Errorf("record how the run was recovered: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO invoice_runs (invoice_id, episode, run_key, status, opened_at, closed_at, close_note)
			VALUES ($1, $2, $3, 'closed', $4, $4, $5)
			ON CONFLICT (invoice_id, episode) DO UPDATE SET status = 'closed', closed_at = EXCLUDED.closed_at,
				close_note = EXCLUDED.close_note
			WHERE invoice_runs.status = 'open'`,
			invoiceID, episodeOf(runKey), runKey, endedAt, outcome); err != nil {
			return fmt.Errorf("close the invoice's run: %w", err)
		}
		return nil
	})
}

// DecisionRow is a decision as stored.
type DecisionRow struct {
	WorkflowID, CustomerID, InvoiceID string
	Step                              int
	Channel, Tone                     string
	IncentiveKind                     string
	IncentiveValue                    int
	Subject, Message, Rationale       string
	DecidedBy, Model, PromptVersion   string
	Variant, PolicyVersion            string
	Violations                        []string
	// Inputs is what the decision was made from (activities.RecordedInputs as JSON), for
	// `starter prompts diff`; nil keeps what the row holds (an approval's outcome overwrites
	// the decision, not what it was decided from).
	Inputs []byte
}

// SaveDecision stores the decision of a step; a retried activity overwrites its own row.
func (s *Store) SaveDecision(ctx context.Context, d DecisionRow) error {
	if d.Violations == nil {
		d.Violations = []string{}
	}
	var inputs any // SQL NULL unless given
	if d.Inputs != nil {
		inputs = string(d.Inputs)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO decisions (workflow_id, step, customer_id, invoice_id, channel, tone, incentive_kind,
			incentive_value, subject, message, rationale, decided_by, model, prompt_version, violations,
			variant, policy_version, inputs)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		ON CONFLICT (workflow_id, step) DO UPDATE SET channel = EXCLUDED.channel, tone = EXCLUDED.tone,
			incentive_kind = EXCLUDED.incentive_kind, incentive_value = EXCLUDED.incentive_value,
			subject = EXCLUDED.subject, message = EXCLUDED.message, rationale = EXCLUDED.rationale,
			decided_by = EXCLUDED.decided_by, model = EXCLUDED.model,
			prompt_version = EXCLUDED.prompt_version, violations = EXCLUDED.violations,
			variant = EXCLUDED.variant, policy_version = EXCLUDED.policy_version,
			inputs = COALESCE(EXCLUDED.inputs, decisions.inputs), created_at = now()`,
		d.WorkflowID, d.Step, d.CustomerID, d.InvoiceID, d.Channel, d.Tone, d.IncentiveKind,
		d.IncentiveValue, d.Subject, d.Message, d.Rationale, d.DecidedBy, d.Model, d.PromptVersion, d.Violations,
		d.Variant, d.PolicyVersion, inputs)
	if err != nil {
		return fmt.Errorf("save decision: %w", err)
	}
	return nil
}

// Offer is an incentive promised to a customer.
type Offer struct {
	OfferKey, WorkflowID, InvoiceID, CustomerID string
	Kind                                        string
	Value                                       int
	ExpiresAt                                   time.Time
}

// SaveOffer records an offer (idempotent on OfferKey).
func (s *Store) SaveOffer(ctx context.Context, o Offer) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO offers (offer_key, workflow_id, invoice_id, customer_id, kind, value, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (offer_key) DO NOTHING`,
		o.OfferKey, o.WorkflowID, o.InvoiceID, o.CustomerID, o.Kind, o.Value, o.ExpiresAt)
	if err != nil {
		return fmt.Errorf("save offer: %w", err)
	}
	return nil
}

// MarkOfferAnnounced records that billing was told of the offer.
func (s *Store) MarkOfferAnnounced(ctx context.Context, offerKey string) error {
	_, err := s.pool.Exec(ctx,
		`UPDATE offers SET announced_at = COALESCE(announced_at, now()) WHERE offer_key = $1`, offerKey)
	if err != nil {
		return fmt.Errorf("mark offer announced: %w", err)
	}
	return nil
}
