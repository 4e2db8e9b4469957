package eventlog_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

func reply(id, body, keyword string) postgres.InboundReply {
	return postgres.InboundReply{EventID: "reply:twilio:" + id, Provider: "twilio", Channel: "sms", Sender: "+14155552671",
		Keyword: keyword, Text: body, ReceivedAt: t0.Add(time.Hour)}
}

// A reply reaches every open run of its customer: free text as a reply signal, STOP as an
// opt-out; START and HELP reach none; a provider's retry is delivered once.
func TestRepliesReachTheCustomersOpenRuns(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	for _, inv := range []string{"inv_1", "inv_2"} {
		if _, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_"+inv, inv, t0), "test"); err != nil {
			t.Fatal(err)
		}
	}
	fake.calls = nil
	for _, r := range []postgres.InboundReply{reply("SM1", "I'll pay on the 15th", ""), reply("SM1", "I'll pay on the 15th", ""),
		reply("SM2", "HELP", "help"), reply("SM3", "STOP", "stop"), reply("SM4", "START", "start"), reply("MM5", " ", "")} {
		if _, err := in.AcceptReply(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"signal reply reply:twilio:SM1", "signal reply reply:twilio:SM1", "signal opt-out reply:twilio:SM3", "signal opt-out reply:twilio:SM3"}
	got := fake.got() // two open runs, each hears each reply once
	if !slices.Equal(got, want) {
		t.Fatalf("Temporal got %q, want %q", fake.got(), want)
	}
}

// A reply recorded while Temporal is unreachable is kept and delivered by the relay later:
// nothing accepted is lost.
func TestAReplyRecordedWhileTemporalIsDownIsDeliveredLater(t *testing.T) {
	ctx := context.Background()
	st := fakes.MustStore(t)
	fake := newFake()
	in := &eventlog.Ingestor{Store: st, Temporal: fake}
	if _, err := in.Accept(ctx, ev(recoup.EventPaymentFailed, "evt_1", "inv_1", t0), "test"); err != nil {
		t.Fatal(err)
	}
	fake.calls = nil
	fake.down = errors.New("connection refused")
	rec, err := in.AcceptReply(ctx, reply("SM1", "This is fraud", ""))
	if !errors.Is(err, eventlog.ErrReplyNotDelivered) || rec.CustomerID != "cus_1" {
		t.Fatalf("AcceptReply = %+v, %v; want recorded, not delivered", rec, err)
	}
	fake.mu.Lock()
	fake.down = nil
	fake.mu.Unlock()
	if n, err := in.DeliverPendingReplies(ctx, 10); err != nil || n != 1 {
		t.Fatalf("DeliverPendingReplies = %d, %v", n, err)
	}
	if got := fake.got(); len(got) != 1 {
		t.Fatalf("Temporal got %q", got)
	}
	if pending, _ := st.UndeliveredReplies(ctx, 10); len(pending) != 0 {
		t.Fatalf("still undelivered: %+v", pending)
	}
}
