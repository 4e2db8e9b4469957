package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/api/serviceerror"

	"github.com/recoup-dunning/recoup"
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
// stops at the first that cannot be delivered, which stays for the next round.
func (in *Ingestor) DeliverPendingReplies(ctx context.Context, limit int) (int, error) {
	n := 0
	_, err := in.Store.WithReplyDeliveryLock(ctx, func() error {
		pending, err := in.Store.UndeliveredReplies(ctx, limit)
		if err != nil {
			return err
		}
		for _, p := range pending {
			note, err := in.deliverReply(ctx, p)
			if err != nil {
				return err
			}
			if err := in.Store.MarkReplyDelivered(ctx, p.EventID, note); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// deliverReply signals a reply to every open run of its customer: a STOP as an opt-out of
// its channel, a free-text reply as a recoup.Reply; START and HELP reach no run (START is a
// consent statement only; the carrier answers HELP itself).
func (in *Ingestor) deliverReply(ctx context.Context, p postgres.RecordedReply) (string, error) {
	if p.CustomerID == "" {
		return "no customer profile has the sender's address", nil
	}
	ch := recoup.Channel(p.Channel)
	var name string
	var payload any
	switch p.Keyword {
	case "stop":
		name, payload = recoup.SignalOptOut, recoup.OptOut{EventID: p.EventID, Channel: ch, OccurredAt: p.ReceivedAt}
	case "start":
		return "START: consent stored; runs already excluding the channel keep it excluded", nil
	case "help":
		return "HELP: the carrier answers it; nothing changes", nil
	default:
		if strings.TrimSpace(p.Text) == "" {
			return "empty reply (media only): nothing to hear", nil
		}
		name, payload = recoup.SignalReply, recoup.Reply{EventID: p.EventID, Channel: ch, Text: p.Text, ReceivedAt: p.ReceivedAt}
	}
	invoices, err := in.Store.OpenRunInvoices(ctx, p.CustomerID)
	if err != nil {
		return "", err
	}
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
			return "", fmt.Errorf("signal %s to %s: %w", name, recoup.WorkflowID(inv), err)
		}
		sent++
	}
	if sent == 0 {
		return "no open run of the customer", nil
	}
	return fmt.Sprintf("%s to %d open run(s)", name, sent), nil
}
