// Package reporttest writes dunning histories into PostgreSQL for the report's tests (the
// report package's and the browser test's): runs, their invoices, customers, decisions,
// sends and offers, as the worker records them.
package reporttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Run is one dunning run to write.
type Run struct {
	ID        string // workflow id; the invoice and customer ids derive from it
	Variant   string
	DecidedBy string // "llm" or "rules"; "" writes no decision
	// ModelNotAsked writes a rules decision the model was never asked about (no model answer
	// in its inputs: no model configured, contact cap …); otherwise a "rules" decision records
	// the model's refusal, as when the rules decided because the model's answer was refused.
	ModelNotAsked bool
	Plan          string // the customer's plan (the segment)
	Currency      string
	Amount        int64
	Outcome       string // "recovered", "exhausted", "canceled", "failed"; "" leaves the run open
	Started       time.Time
	Took          time.Duration // ended_at - started_at
	Sends         []Send
	Discount      int // a discount_percent offer of this value (0: none)
}

// Send is a message sent (status "sent") at Step, After the run's start.
type Send struct {
	Step    int
	Channel string
	After   time.Duration
}

// Write writes runs, failing the test on any error.
func Write(tb testing.TB, pool *pgxpool.Pool, runs ...Run) {
	tb.Helper()
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		tb.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	for _, r := range runs {
		inv, cus := "inv_"+r.ID, "cus_"+r.ID
		exec(`INSERT INTO customers (customer_id, plan, profile_updated_at) VALUES ($1, $2, $3)`, cus, r.Plan, r.Started)
		exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
			VALUES ($1, $2, $3, $4, 'open', $5, $5)`, inv, cus, r.Amount, r.Currency, r.Started)
		if r.Outcome == "" {
			exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, started_at) VALUES ($1, $2, $3, $4)`,
				r.ID, inv, cus, r.Started)
		} else {
			exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, steps, started_at, ended_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.ID, inv, cus, r.Outcome, len(r.Sends), r.Started, r.Started.Add(r.Took))
		}
		if r.DecidedBy != "" {
			exec(`INSERT INTO decisions (workflow_id, step, customer_id, invoice_id, channel, tone, incentive_kind,
					incentive_value, message, rationale, decided_by, prompt_version, variant, policy_version, created_at, inputs)
				VALUES ($1, 1, $2, $3, 'email', 'friendly', 'none', 0, 'msg', 'why', $4, 'v1', $5, 'p1', $6, $7::jsonb)`,
				r.ID, cus, inv, r.DecidedBy, r.Variant, r.Started, seedInputs(r))
		}
		for _, s := range r.Sends {
			at := r.Started.Add(s.After)
			exec(`INSERT INTO sends (idempotency_key, workflow_id, step, channel, customer_id, invoice_id, status, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, 'sent', $7, $7)`, fmt.Sprintf("%s/%d/%s", r.ID, s.Step, s.Channel),
				r.ID, s.Step, s.Channel, cus, inv, at)
		}
		if r.Discount > 0 {
			exec(`INSERT INTO offers (offer_key, workflow_id, invoice_id, customer_id, kind, value, expires_at, created_at)
				VALUES ($1, $2, $3, $4, 'discount_percent', $5, $6, $7)`, r.ID+"/offer", r.ID, inv, cus, r.Discount,
				r.Started.AddDate(0, 1, 0), r.Started)
		}
	}
}

// seedInputs is the decision's recorded inputs as far as the report reads them: whether the
// model answered (model_answer) or refused (model_refusal).
func seedInputs(r Run) string {
	switch {
	case r.DecidedBy == "llm":
		return `{"schema": 1, "model": "seed", "model_answer": "{}"}`
	case r.ModelNotAsked:
		return `{"schema": 1}`
	default:
		return `{"schema": 1, "model": "seed", "model_refusal": "refused in the seed"}`
	}
}
