package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/replies"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// ErrReplyNotDelivered wraps a delivery error of a reply that was recorded: the provider
// gets its 2xx, the relay delivers it later.
var ErrReplyNotDelivered = errors.New("recorded but not delivered yet")

// AcceptReply records a customer's reply (a provider's retry is a duplicate; a STOP or
// START is stored in the consent ledger in the same transaction) and then delivers the
// replies not yet delivered, in the order they were received, to the open runs of their
// customers. Once recorded the reply is never lost: an error after recording leaves it for
// the relay (DeliverPendingReplies) and is returned with the record.
func (in *Ingestor) AcceptReply(ctx context.Context, r postgres.InboundReply) (postgres.RecordedReply, error) {
	rec, err := in.Store.RecordReply(ctx, r)
	if err == nil && !rec.Duplicate && rec.Outcome != "" {
		in.countReply(rec.Outcome)
	}
	if err != nil || rec.Delivered {
		return rec, err
	}
	dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	_, err = in.DeliverPendingReplies(dctx, 100)
	if err != nil {
		return rec, fmt.Errorf("reply %s %w: %w", rec.EventID, ErrReplyNotDelivered, err)
	}
	return rec, nil
}

// DeliverPendingReplies delivers recorded replies in the order they were received, one
// relay at a time (a PostgreSQL advisory lock; another holder delivers them instead). It
// stops at the first that cannot be delivered, which stays for the next round. A reply of a
// matched customer without an open run stays parked (undelivered, out of the list) until a
// run of that customer opens, for postgres.ReplyParkWindow at most.
func (in *Ingestor) DeliverPendingReplies(ctx context.Context, limit int) (int, error) {
	n := 0
	_, err := in.Store.WithReplyDeliveryLock(ctx, func() error {
		pending, err := in.Store.UndeliveredReplies(ctx, limit)
		if err != nil {
			return err
		}
		for _, p := range pending {
			note, outcome, err := in.deliverReply(ctx, p)
			if err != nil {
				return err
			}
			if outcome == "" {
				continue // parked: waits for a run of its customer
			}
			if err := in.Store.MarkReplyDelivered(ctx, p.EventID, note); err != nil {
				return err
			}
			in.countReply(outcome)
			n++
		}
		return nil
	})
	return n, err
}

func (in *Ingestor) countReply(outcome string) {
	if in.Metrics != nil && in.Metrics.Replies != nil {
		in.Metrics.Replies.WithLabelValues(outcome).Inc()
	}
}

// deliverReply signals a reply to every open run of its customer: a STOP as an opt-out of
// its channel, a free-text reply as a recoup.Reply; START and HELP reach no run (START is a
// consent statement only; the carrier answers HELP itself). A free-text reply whose customer
// has no open run is parked (outcome ""), and closed for support once it is older than
// postgres.ReplyParkWindow.
func (in *Ingestor) deliverReply(ctx context.Context, p postgres.RecordedReply) (note, outcome string, err error) {
	if p.CustomerID == "" {
		return "no customer profile has the sender's address: left for support", "no_customer", nil
	}
	ch := recoup.Channel(p.Channel)
	var name string
	var payload any
	switch p.Keyword {
	case string(replies.KeywordStop):
		name, payload = recoup.SignalOptOut, recoup.OptOut{EventID: p.EventID, Channel: ch, OccurredAt: p.ReceivedAt}
	case string(replies.KeywordStart):
		return "START: consent stored; runs already excluding the channel keep it excluded", "closed", nil
	case string(replies.KeywordHelp):
		return "HELP: the carrier answers it; nothing changes", "closed", nil
	default:
		if strings.TrimSpace(p.Text) == "" {
			return "empty reply (media only): nothing to hear", "closed", nil
		}
		name, payload = recoup.SignalReply, recoup.Reply{EventID: p.EventID, Channel: ch, Text: p.Text, ReceivedAt: p.ReceivedAt}
	}
	invoices, err := in.Store.OpenRunInvoicesFor(ctx, p.CustomerID, p.ReceivedAt)
	if err != nil {
		return "", "", err
	}
	sent, err := in.signalRuns(ctx, invoices, name, payload)
	switch {
	case err != nil:
		return "", "", err
	case sent > 0:
		return fmt.Sprintf("%s to %d open run(s)", name, sent), "delivered", nil
	case name == recoup.SignalOptOut:
		return "STOP: consent stored; no open run of the customer to tell", "closed", nil
	case time.Since(p.ReceivedAt) > postgres.ReplyParkWindow:
		return fmt.Sprintf("no run of the customer opened within %s of the reply: left for support", postgres.ReplyParkWindow), "expired", nil
	}
	return "", "", nil // parked
}

// signalRuns signals every run of invoices; a run that closed meanwhile is skipped.
func (in *Ingestor) signalRuns(ctx context.Context, invoices []string, name string, payload any) (int, error) {
	sent := 0
	for _, inv := range invoices {
		sctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
		err := in.Temporal.SignalWorkflow(sctx, recoup.WorkflowID(inv), "", name, payload)
		cancel()
		var notFound *serviceerror.NotFound
		switch {
		case errors.As(err, &notFound):
			continue // the run closed meanwhile (a STOP is in the consent ledger anyway)
		case err != nil:
			return 0, fmt.Errorf("signal %s to %s: %w", name, recoup.WorkflowID(inv), err)
		}
		sent++
	}
	return sent, nil
}
