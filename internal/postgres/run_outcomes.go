package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RunOutcome is the true outcome of a dunning run Temporal closed without the workflow
// recording it (terminated, timed out, failed): see migration 00014.
type RunOutcome struct {
	WorkflowID, RunID, InvoiceID string
	Outcome                      string // terminated | timed_out | failed | canceled | completed
	RecordedStatus               string // DunningStatus when it closed: what the run last said of itself
	ClosedBy, Reason             string
	ClosedAt, FoundAt            time.Time
	// FirstRunID, when set, closes the invoice's open episode (invoice_runs) that Temporal
	// started as this run (its first run id, before any continue-as-new) at ClosedAt, as
	// FinishRun would have: a failure that occurs after the close then starts the next run.
	// Left empty when the workflow goes on (a reset) — nothing is closed then.
	FirstRunID string
}

// RunOutcomeKinds are the outcomes run_outcomes accepts.
var RunOutcomeKinds = []string{"terminated", "timed_out", "failed", "canceled", "completed"}

// RecordRunOutcome records a closed run's true outcome once (recording it again changes
// nothing) and, with FirstRunID, closes the invoice's episode that run was. recorded reports
// whether this call recorded the outcome.
func (s *Store) RecordRunOutcome(ctx context.Context, o RunOutcome) (recorded bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockInvoice(ctx, tx, o.InvoiceID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO run_outcomes (workflow_id, run_id, invoice_id, outcome, recorded_status, closed_by, reason, closed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (workflow_id, run_id) DO NOTHING`,
			o.WorkflowID, o.RunID, o.InvoiceID, o.Outcome, o.RecordedStatus, o.ClosedBy, o.Reason, o.ClosedAt)
		if err != nil {
			return err
		}
		recorded = tag.RowsAffected() == 1
		if o.FirstRunID == "" {
			return nil
		}
		_, err = tx.Exec(ctx, `
			UPDATE invoice_runs SET status = 'closed', closed_at = $3, close_note = $4
			WHERE invoice_id = $1 AND run_id = $2 AND status = 'open'`,
			o.InvoiceID, o.FirstRunID, o.ClosedAt, o.Outcome+" in Temporal, outside the workflow")
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record the outcome of %s (run %s): %w", o.WorkflowID, o.RunID, err)
	}
	return recorded, nil
}

// HasRunOutcome reports whether a run's outcome is recorded.
func (s *Store) HasRunOutcome(ctx context.Context, workflowID, runID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM run_outcomes WHERE workflow_id = $1 AND run_id = $2)`,
		workflowID, runID).Scan(&ok)
	return ok, err
}

// FindRunOutcome returns the recorded outcome of one Temporal run; ok is false when none is.
func (s *Store) FindRunOutcome(ctx context.Context, workflowID, runID string) (o RunOutcome, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `
		SELECT workflow_id, run_id, invoice_id, outcome, recorded_status, closed_by, reason, closed_at, found_at
		FROM run_outcomes WHERE workflow_id = $1 AND run_id = $2`, workflowID, runID).
		Scan(&o.WorkflowID, &o.RunID, &o.InvoiceID, &o.Outcome, &o.RecordedStatus, &o.ClosedBy, &o.Reason, &o.ClosedAt, &o.FoundAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return RunOutcome{}, false, nil
	}
	if err != nil {
		return RunOutcome{}, false, fmt.Errorf("read the outcome of %s (run %s): %w", workflowID, runID, err)
	}
	return o, true, nil
}
