package postgres

import (
	"context"
	"fmt"
	"time"
)

// RecordedDecision is a stored decision with what it was decided from, for `starter prompts
// diff`. Inputs is nil for a decision recorded before inputs were kept.
type RecordedDecision struct {
	WorkflowID, CustomerID, InvoiceID string
	Step                              int
	Channel, Tone                     string
	IncentiveKind                     string
	IncentiveValue                    int
	DecidedBy                         string
	PromptVersion, PolicyVersion      string
	CreatedAt                         time.Time
	Inputs                            []byte
}

// RecordedDecisions returns the decisions stored since t, newest first, at most limit of
// them (0: all). It only reads.
func (s *Store) RecordedDecisions(ctx context.Context, since time.Time, limit int) ([]RecordedDecision, error) {
	q := `SELECT workflow_id, customer_id, invoice_id, step, channel, tone, incentive_kind, incentive_value,
			decided_by, prompt_version, policy_version, created_at, inputs::text
		FROM decisions WHERE created_at >= $1 ORDER BY created_at DESC, workflow_id, step`
	args := []any{since}
	if limit > 0 {
		q += ` LIMIT $2`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read recorded decisions: %w", err)
	}
	defer rows.Close()
	var out []RecordedDecision
	for rows.Next() {
		var d RecordedDecision
		var inputs *string
		if err := rows.Scan(&d.WorkflowID, &d.CustomerID, &d.InvoiceID, &d.Step, &d.Channel, &d.Tone, &d.IncentiveKind,
			&d.IncentiveValue, &d.DecidedBy, &d.PromptVersion, &d.PolicyVersion, &d.CreatedAt, &inputs); err != nil {
			return nil, fmt.Errorf("read recorded decisions: %w", err)
		}
		if inputs != nil {
			d.Inputs = []byte(*inputs)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read recorded decisions: %w", err)
	}
	return out, nil
}

// CountRecordedDecisions counts the decisions stored since t (what RecordedDecisions reads
// without a limit). It only reads.
func (s *Store) CountRecordedDecisions(ctx context.Context, since time.Time) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM decisions WHERE created_at >= $1`, since).Scan(&n); err != nil {
		return 0, fmt.Errorf("count recorded decisions: %w", err)
	}
	return n, nil
}

// OfferedByKindSince sums the incentives offered to a customer since t, per kind, in one
// query (OfferedSince for every kind); a kind never offered is absent.
func (s *Store) OfferedByKindSince(ctx context.Context, customerID string, t time.Time) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT kind, COALESCE(sum(value), 0) FROM offers WHERE customer_id = $1 AND created_at >= $2 GROUP BY kind`,
		customerID, t)
	if err != nil {
		return nil, fmt.Errorf("sum offered incentives: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, fmt.Errorf("sum offered incentives: %w", err)
		}
		out[kind] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sum offered incentives: %w", err)
	}
	return out, nil
}
