package eventlog_test

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// A reply that arrives while the customer has no open run (billing's payment_failed is
// late, or routing has not opened the run yet) waits, parked, and reaches the run that opens
// a moment later: the customer's "I'll pay on Friday" is not lost.
func TestAReplyBeforeTheRunExistsReachesTheRunThatOpens(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	yes := true
	if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_1", Email: "ada@example.com", Phone: "+14155552671",
		EmailConsentSet: &yes, SMSConsentSet: &yes, UpdatedAt: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	r := reply("SMreview2", "I'll pay on Friday", "")
	r.ReceivedAt = t0.Add(-time.Minute)
	if _, err := in.AcceptReply(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_inv_1", "inv_1", t0), "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := in.DeliverPendingReplies(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fake.got(), "signal reply reply:twilio:SMreview2") {
		var note string
		_ = st.Pool().QueryRow(ctx, `SELECT delivery_note FROM inbound_replies WHERE event_id = $1`, r.EventID).Scan(&note)
		t.Fatalf("the reply never reached the run that opened (Temporal got %q); it was closed as %q", fake.got(), note)
	}
}

// A parked reply whose customer opens no run within the park window is closed for support
// (counted as expired), and a reply from an unknown sender is counted as no_customer.
func TestAParkedReplyNoRunHearsIsClosedForSupportAndCounted(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	yes := true
	if _, err := st.UpsertCustomer(ctx, postgres.Customer{CustomerID: "cus_1", Email: "ada@example.com", Phone: "+14155552671",
		EmailConsentSet: &yes, SMSConsentSet: &yes, UpdatedAt: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	m := observability.NewIngressMetrics(prometheus.NewRegistry())
	in := &eventlog.Ingestor{Store: st, Temporal: newFake(), Metrics: m}
	old := reply("SMold", "I'll pay next month", "")
	old.ReceivedAt = time.Now().Add(-postgres.ReplyParkWindow - time.Hour)
	if _, err := in.AcceptReply(ctx, old); err != nil {
		t.Fatal(err)
	}
	recent := reply("SMrecent", "I'll pay on Friday", "")
	recent.ReceivedAt = time.Now().Add(-time.Hour)
	if _, err := in.AcceptReply(ctx, recent); err != nil {
		t.Fatal(err)
	}
	stranger := reply("SMstranger", "who is this", "")
	stranger.Sender = "+15550000000"
	if _, err := in.AcceptReply(ctx, stranger); err != nil {
		t.Fatal(err)
	}
	var note string
	if err := st.Pool().QueryRow(ctx, `SELECT delivery_note FROM inbound_replies WHERE event_id = $1 AND delivered_at IS NOT NULL`, old.EventID).Scan(&note); err != nil {
		t.Fatalf("the expired reply is not closed: %v", err)
	}
	if n, err := st.ParkedReplies(ctx); err != nil || n != 1 {
		t.Fatalf("parked %d, %v; want the recent reply still waiting", n, err)
	}
	for outcome, want := range map[string]float64{"expired": 1, "no_customer": 1, "delivered": 0} {
		if got := testutil.ToFloat64(m.Replies.WithLabelValues(outcome)); got != want {
			t.Errorf("recoup_replies_total{result=%q} = %v, want %v", outcome, got, want)
		}
	}
}
