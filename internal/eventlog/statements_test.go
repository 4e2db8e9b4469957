package eventlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// statementCounter counts the statements a store's connections run, begin and commit
// included: each is a round trip to PostgreSQL.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// What accepting a payment.failed that starts a run costs PostgreSQL, in statements: record
// it (with the customer snapshot it carries), feed the detector, claim the invoice, route,
// start, mark delivered. Every first touch pays it, so a change that adds a round trip must
// say so here. Measured when written: 42 for a new customer, 34 for a known one, down from
// 48 and 40 (the detector's fed flag was asked even when this process had just fed it, the
// delivery was read back after it was made, and a start took two reads where one does).
func TestAcceptingAFailureCostsAtMostItsStatements(t *testing.T) {
	const newCustomer, knownCustomer = 42, 34
	st := fakes.MustStore(t)
	var count statementCounter
	counted := fakes.StoreBesideWith(t, st, postgres.Options{Tracer: &count})
	fake := newFake()
	in := &eventlog.Ingestor{Store: counted, Temporal: fake}
	for i := range 12 {
		cust, budget := fmt.Sprintf("cus_%d", i%4), newCustomer
		if i >= 4 {
			budget = knownCustomer
		}
		raw, _ := json.Marshal(workertest.Failed(fmt.Sprintf("evt_%d", i), fmt.Sprintf("inv_%d", i), cust, t0))
		before := count.n.Load()
		res, err := in.Accept(context.Background(), raw, "test")
		if err != nil || !res.Delivered {
			t.Fatalf("failure %d: delivered %v, %v", i, res.Delivered, err)
		}
		if got := count.n.Load() - before; got > int64(budget) {
			t.Errorf("accepting failure %d (customer %s, seen before: %v) ran %d statements, more than %d", i, cust, i >= 4, got, budget)
		}
	}
	if got := fake.got(); len(got) != 12 {
		t.Fatalf("runs started: %v, want 12", got)
	}
}

// feedRounds counts the detector feed rounds a store's connections begin (each takes the
// feed's advisory lock).
type feedRounds struct{ n atomic.Int64 }

func (c *feedRounds) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "pg_try_advisory_xact_lock") {
		c.n.Add(1)
	}
	return ctx
}

func (c *feedRounds) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Billing sending a failure again (its first request timed out before the run started) is
// a duplicate that another process's feed already fed: Accept asks whether it was fed and
// starts its run, without a feed round of its own. It used to take the duplicate for an
// event it had just recorded, skip asking, run a round that found nothing and pause 50 ms.
func TestAcceptingADuplicateOfAFedFailureRunsNoFeedRound(t *testing.T) {
	st := fakes.MustStore(t)
	var rounds feedRounds
	counted := fakes.StoreBesideWith(t, st, postgres.Options{Tracer: &rounds})
	fake := newFake()
	raw, _ := json.Marshal(workertest.Failed("evt_1", "inv_1", "cus_1", t0))
	other := &eventlog.Ingestor{Store: st, Temporal: fake} // the process that got the first request
	mustRecord(t, other, raw)
	feed(t, other)
	in := &eventlog.Ingestor{Store: counted, Temporal: fake}
	res, err := in.Accept(context.Background(), raw, "test")
	if err != nil || !res.Duplicate || !res.Delivered {
		t.Fatalf("the failure again: %+v, %v; want a duplicate, delivered", res, err)
	}
	if n := rounds.n.Load(); n != 0 {
		t.Errorf("accepting a duplicate of a fed failure ran %d feed rounds, want none", n)
	}
}
