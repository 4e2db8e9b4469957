package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/provider"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// IdempotencyKey is the key of the one message a run may send at a step on a channel.
func IdempotencyKey(workflowID string, step int, ch recoup.Channel) string {
	return fmt.Sprintf("%s/step-%d/%s", workflowID, step, ch)
}

// SendInput is one message to send.
type SendInput struct {
	IdempotencyKey string // IdempotencyKey(workflow id, step, channel), derived in the workflow
	WorkflowID     string
	InvoiceID      string
	CustomerID     string
	Step           int
	Decision       recoup.Decision
	OfferExpiresAt time.Time // when Decision carries an incentive
	AmountMinor    int64
	Currency       string
	// NotBefore and NotAfter bound the allowed-hours window in which the message may be
	// handed to the provider (checked with the worker's clock at every attempt); a zero value
	// bounds nothing. The customer's allowed hours are checked at every attempt as well,
	// whether or not a window is given (see hours.go).
	NotBefore time.Time
	NotAfter  time.Time
	// Resend asks, once the reconcile window of the step's send (IdempotencyKey) has passed,
	// what the evidence says (postgres.ClaimResend): the provider's events named it (its
	// outcome is returned, nothing is sent), or none did and the message is sent again
	// under recoup.ResendKey(IdempotencyKey) — once: a resend is never resent.
	Resend bool

	resendOf string // set by the activity for the resend's reservation
}

// SendResult says how the message left.
type SendResult struct {
	Delivery          string // postgres.SendSent, postgres.SendLogged or postgres.SendReconcile
	ProviderMessageID string
	// ReconcileAt is set with Delivery reconcile (not for a resend): the end of the window
	// after which the run asks again with Resend.
	ReconcileAt time.Time
	// ResendKey is set when this is the outcome of the step's resend (recoup.ResendKey of the
	// input's key): the message the provider got carries it.
	ResendKey string

	// ofOriginal: the resend was not reserved because an event settled the original since
	// (postgres.ReserveSend): this is the original's outcome, under its own key.
	ofOriginal bool
}

// SendEmail sends the step's email through SendGrid exactly once (see send).
func (a *DunningActivities) SendEmail(ctx context.Context, in SendInput) (SendResult, error) {
	return a.send(ctx, recoup.ChannelEmail, in)
}

// SendSMS sends the step's SMS through Twilio exactly once (see send).
func (a *DunningActivities) SendSMS(ctx context.Context, in SendInput) (SendResult, error) {
	return a.send(ctx, recoup.ChannelSMS, in)
}

// send renders the message and hands it to the provider at most once per idempotency key:
//   - a reservation row is written before the provider is called;
//   - a later attempt that finds the message sent returns the stored result without calling;
//   - one that finds a reservation whose outcome is unknown (the worker died mid-call) does
//     not call again and leaves the send marked for reconciliation;
//   - a definite rejection (4xx) is a non-retryable ProviderRejected error;
//   - 429, 5xx and connection failures release the reservation and are retried.
//
// With no provider configured for the channel the message is rendered, stored and logged
// (log delivery mode).
func (a *DunningActivities) send(ctx context.Context, ch recoup.Channel, in SendInput) (SendResult, error) {
	if in.IdempotencyKey == "" || in.Decision.Channel != ch {
		return SendResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("send %s: idempotency key %q / decision channel %q do not match", ch, in.IdempotencyKey, in.Decision.Channel),
			recoup.ErrTypeInvalidInput, nil)
	}
	log := a.logger(ctx).With("idempotency_key", in.IdempotencyKey, "channel", string(ch))
	if in.Resend {
		if res, done, err := a.fromEvidence(ctx, log, ch, in); done {
			return res, err
		}
		in.resendOf, in.IdempotencyKey = in.IdempotencyKey, recoup.ResendKey(in.IdempotencyKey)
		res, err := a.deliver(ctx, log.With("idempotency_key", in.IdempotencyKey), ch, in)
		if !res.ofOriginal {
			res.ResendKey = in.IdempotencyKey
		}
		return res, err
	}
	return a.deliver(ctx, log, ch, in)
}

// deliver checks the customer and the allowed hours, renders the message, reserves its key
// and hands it to the provider (see send).
func (a *DunningActivities) deliver(ctx context.Context, log *slog.Logger, ch recoup.Channel, in SendInput) (SendResult, error) {
	c, err := a.Store.GetCustomer(ctx, in.CustomerID)
	if err != nil {
		return SendResult{}, err
	}
	if reason := unreachable(c, ch); reason != "" {
		return SendResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("customer %s cannot be reached by %s: %s", in.CustomerID, ch, reason), recoup.ErrTypeNotReachable, nil)
	}
	if res, done, err := a.outsideHoursOutcome(ctx, log, ch, c, in); done {
		return res, err
	}
	msg, err := a.render(ch, c, in)
	if err != nil {
		return SendResult{}, temporal.NewNonRetryableApplicationError("render message: "+err.Error(), recoup.ErrTypeInvalidInput, err)
	}
	if res, done, err := a.reserve(ctx, log, ch, in, msg); done {
		return res, err
	}
	// From here on the reservation is ours: record the outcome even if ctx ends.
	return a.handOver(ctx, log, ch, c, in, msg)
}

// outsideHoursOutcome checks the allowed hours by the worker's clock at this attempt (see
// hours.go). Outside them nothing is reserved or sent (done), unless an earlier attempt
// already settled the message: then its outcome is returned.
func (a *DunningActivities) outsideHoursOutcome(ctx context.Context, log *slog.Logger, ch recoup.Channel, c postgres.Customer, in SendInput) (SendResult, bool, error) {
	why, err := a.outsideHours(c, ch, in, a.now())
	if err != nil {
		return SendResult{}, true, err
	}
	if why == "" {
		return SendResult{}, false, nil
	}
	row, found, err := a.Store.FindSend(ctx, in.IdempotencyKey)
	if err != nil {
		return SendResult{}, true, err
	}
	if found && row.Status != postgres.SendReserved && row.Status != postgres.SendRetry {
		res, err := a.earlier(log, ch, in, row)
		return res, true, err
	}
	log.Info("attempt outside allowed hours; not sent", "reason", why)
	return SendResult{}, true, temporal.NewNonRetryableApplicationError(why, recoup.ErrTypeOutsideAllowedHours, nil)
}

// reserve writes the send's reservation before the provider is called; done when the send
// must not go on (settled, barred, or settled by an earlier attempt: its outcome).
func (a *DunningActivities) reserve(ctx context.Context, log *slog.Logger, ch recoup.Channel, in SendInput, msg rendered) (SendResult, bool, error) {
	row, claimed, err := a.Store.ReserveSend(ctx, postgres.Reservation{
		Key: in.IdempotencyKey, WorkflowID: in.WorkflowID, Step: in.Step, Channel: string(ch),
		CustomerID: in.CustomerID, InvoiceID: in.InvoiceID, Subject: msg.subject, Body: msg.text, ResendOf: in.resendOf,
	})
	var barred *postgres.SendBarredError
	var settled *postgres.SettledError
	switch {
	case errors.As(err, &settled):
		log.Info("invoice settled since the run started; not sent", "event_id", settled.EventID)
		return SendResult{}, true, settledError(settled)
	case errors.As(err, &barred):
		return SendResult{}, true, temporal.NewNonRetryableApplicationError(barred.Reason, recoup.ErrTypeNotReachable, nil)
	case err != nil:
		return SendResult{}, true, err
	case !claimed:
		res, err := a.earlier(log, ch, in, row)
		res.ofOriginal = in.resendOf != "" && row.Key == in.resendOf
		return res, true, err
	}
	return SendResult{}, false, nil
}

// handOver calls the channel's provider (or logs the message in log delivery mode) and
// records the outcome of the reserved send, even if ctx ends.
func (a *DunningActivities) handOver(ctx context.Context, log *slog.Logger, ch recoup.Channel, c postgres.Customer, in SendInput, msg rendered) (SendResult, error) {
	bg := context.WithoutCancel(ctx)
	var providerID string
	var err error
	switch {
	case ch == recoup.ChannelEmail && a.Email != nil:
		providerID, err = a.Email.Send(ctx, sendgrid.Message{
			To: c.Email, ToName: templates.DisplayName(c.Name), Subject: msg.subject, Text: msg.text, HTML: msg.html,
			IdempotencyKey: in.IdempotencyKey, Categories: []string{"dunning"},
		})
	case ch == recoup.ChannelSMS && a.SMS != nil:
		providerID, err = a.SMS.Send(ctx, twilio.Message{To: c.Phone, Body: msg.text, IdempotencyKey: in.IdempotencyKey})
	default:
		if err := a.Store.CompleteSend(bg, in.IdempotencyKey, postgres.SendLogged, ""); err != nil {
			return SendResult{}, err
		}
		a.Metrics.Message(string(ch), in.Decision.Tone, in.Decision.DecidedBy, postgres.SendLogged)
		log.Info("delivery mode log: no provider credentials for this channel; the rendered message is stored in PostgreSQL (sends.body), not sent",
			"customer_id", in.CustomerID, "invoice_id", in.InvoiceID, "chars", len(msg.text))
		return SendResult{Delivery: postgres.SendLogged}, nil
	}
	if err != nil {
		a.Metrics.ProviderError(providerName(ch), err)
	}
	if herr := a.heardRefusal(bg, log, ch, c, in, err); herr != nil {
		return SendResult{}, herr
	}
	return a.recordOutcome(bg, log, ch, in, providerID, err)
}

// heardRefusal stores what a synchronous refusal of Twilio proves of the customer, as a
// status callback with the same code would (no callback follows a refused create-message
// call): an invalid or landline number (21211, 21614) is marked undeliverable; a recipient
// who replied STOP (21610) is an SMS opt-out in the consent ledger, source twilio.
func (a *DunningActivities) heardRefusal(bg context.Context, log *slog.Logger, ch recoup.Channel, c postgres.Customer, in SendInput, err error) error {
	var pe *provider.Error
	if ch != recoup.ChannelSMS || !errors.As(err, &pe) || !pe.Permanent {
		return nil
	}
	at := time.Now().UTC() // when Twilio answered (a.now() is the send-time checks' clock)
	switch {
	case provider.TwilioUnreachableCode(pe.Code):
		marked, merr := a.Store.MarkUndeliverable(bg, in.CustomerID, string(ch), c.Phone, "twilio refused the message "+pe.Code, at)
		if merr != nil {
			return merr
		}
		log.Warn("Twilio refused the number; marked undeliverable on the customer", "code", pe.Code, "marked", marked)
	case pe.Code == provider.TwilioOptedOutCode:
		id, oerr := a.Store.RecordProviderOptOut(bg, postgres.ProviderOptOut{Provider: postgres.ConsentTwilio,
			ProviderEventID: "refused/" + in.IdempotencyKey + "/" + pe.Code, InvoiceID: in.InvoiceID, CustomerID: in.CustomerID,
			Channel: string(ch), At: at, Reason: fmt.Sprintf("twilio refused message %s: the recipient replied STOP (%s)", in.IdempotencyKey, pe.Code)})
		if oerr != nil {
			return oerr
		}
		log.Warn("Twilio refused the message: the recipient replied STOP; SMS opt-out recorded", "code", pe.Code, "event_id", id)
	}
	return nil
}

// recordOutcome records what the provider answered: sent, rejected (non-retryable),
// outcome unknown (marked for reconciliation, not retried) or failed (released, retried).
func (a *DunningActivities) recordOutcome(bg context.Context, log *slog.Logger, ch recoup.Channel, in SendInput, providerID string, err error) (SendResult, error) {
	switch {
	case err == nil:
		if err := a.Store.CompleteSend(bg, in.IdempotencyKey, postgres.SendSent, providerID); err != nil {
			// The provider accepted the message; a retry will find the reservation and
			// mark it for reconciliation instead of sending again.
			return SendResult{}, err
		}
		a.Metrics.Message(string(ch), in.Decision.Tone, in.Decision.DecidedBy, postgres.SendSent)
		log.Info("message sent", "provider_message_id", providerID)
		return SendResult{Delivery: postgres.SendSent, ProviderMessageID: providerID}, nil
	case provider.IsPermanent(err):
		if ferr := a.Store.FailSend(bg, in.IdempotencyKey, err.Error()); ferr != nil {
			return SendResult{}, ferr
		}
		log.Warn("provider rejected the message", "error", err)
		return SendResult{}, temporal.NewNonRetryableApplicationError(err.Error(), recoup.ErrTypeProviderRejected, err)
	case errors.Is(err, provider.ErrOutcomeUnknown):
		if rerr := a.Store.ReconcileSend(bg, in.IdempotencyKey, err.Error()); rerr != nil {
			return SendResult{}, rerr
		}
		a.recordReconcile(ch, in)
		log.Warn("provider outcome unknown; not retrying, marked for reconciliation from the provider's events", "error", err)
		return SendResult{Delivery: postgres.SendReconcile, ReconcileAt: a.reconcileAt(in)}, nil
	default:
		if rerr := a.Store.ReleaseSend(bg, in.IdempotencyKey, err.Error()); rerr != nil {
			return SendResult{}, rerr
		}
		return SendResult{}, err
	}
}

// earlier returns the outcome of an earlier attempt at the send (row) without calling the
// provider.
func (a *DunningActivities) earlier(log *slog.Logger, ch recoup.Channel, in SendInput, row postgres.SendRow) (SendResult, error) {
	switch row.Status {
	case postgres.SendSent, postgres.SendLogged:
		log.Info("message already delivered by an earlier attempt; not sending again", "delivery", row.Status)
		return SendResult{Delivery: row.Status, ProviderMessageID: row.ProviderMessageID}, nil
	case postgres.SendReconcile:
		log.Warn("an earlier attempt may have sent this message; not sending again, marked for reconciliation")
		if row.Reconciled { // count each send once, however many attempts find it
			a.recordReconcile(ch, in)
		}
		return SendResult{Delivery: postgres.SendReconcile, ReconcileAt: a.reconcileAt(in)}, nil
	case postgres.SendSuperseded:
		// No provider event named it within the window: the step's resend carries the message.
		log.Info("this message was superseded by the step's resend; not sending again")
		return SendResult{Delivery: postgres.SendSuperseded}, nil
	default: // failed
		return SendResult{}, temporal.NewNonRetryableApplicationError(
			"provider rejected this message earlier: "+row.Error, recoup.ErrTypeProviderRejected, nil)
	}
}

// reconcileAt is when the reconcile window of a send whose outcome is unknown ends (from
// now, which is after the attempt's claim); zero for a resend, which is never resent.
func (a *DunningActivities) reconcileAt(in SendInput) time.Time {
	if in.Resend || in.resendOf != "" {
		return time.Time{}
	}
	return a.now().Add(a.reconcileWindow())
}

// fromEvidence settles, for a Resend, the step's first send from the evidence
// (postgres.ClaimResend): done with its outcome when the provider's events named it (or it
// was otherwise settled), not done when none did within the window and the message must go
// again. Within the window it returns a retryable error.
func (a *DunningActivities) fromEvidence(ctx context.Context, log *slog.Logger, ch recoup.Channel, in SendInput) (SendResult, bool, error) {
	row, resend, err := a.Store.ClaimResendIf(ctx, in.IdempotencyKey, a.reconcileWindow(), a.HearsEvents[ch])
	if err != nil {
		return SendResult{}, true, err
	}
	if !a.HearsEvents[ch] && row.Status == postgres.SendReconcile {
		log.Warn("no provider event can reach this deployment for this channel (its event path is not configured): the message stays in reconcile, never resent blind")
	}
	if resend {
		log.Warn("no provider event named the message within the reconcile window: the provider never accepted it; sending it again, once",
			"window", a.reconcileWindow().String())
		return SendResult{}, false, nil
	}
	if row.Status == postgres.SendSent {
		log.Info("the provider's events show it accepted the message; not sending again")
	}
	res, err := a.earlier(log, ch, in, row)
	return res, true, err
}

// recordReconcile counts a message marked for reconciliation.
func (a *DunningActivities) recordReconcile(ch recoup.Channel, in SendInput) {
	a.Metrics.Message(string(ch), in.Decision.Tone, in.Decision.DecidedBy, postgres.SendReconcile)
	a.Metrics.SendReconciled(string(ch))
}

// providerName names the provider of a channel in metrics.
func providerName(ch recoup.Channel) string {
	if ch == recoup.ChannelSMS {
		return postgres.ConsentTwilio
	}
	return postgres.ConsentSendGrid
}

func unreachable(c postgres.Customer, ch recoup.Channel) string {
	switch ch {
	case recoup.ChannelEmail:
		if c.Email == "" {
			return "no email address"
		}
		if !c.EmailConsent {
			return "no consent to email"
		}
		if c.EmailUndeliverable != "" {
			return "the provider proved the email address undeliverable (" + c.EmailUndeliverable + ")"
		}
		return invalidAddress(c, ch)
	case recoup.ChannelSMS:
		if c.Phone == "" {
			return "no phone number"
		}
		if !c.SMSConsent {
			return "no consent to SMS"
		}
		if c.SMSUndeliverable != "" {
			return "the provider proved the phone number undeliverable (" + c.SMSUndeliverable + ")"
		}
		return invalidAddress(c, ch)
	}
	return ""
}

type rendered struct{ subject, text, html string }

func (a *DunningActivities) render(ch recoup.Channel, c postgres.Customer, in SendInput) (rendered, error) {
	set := a.Prompts()
	d := templates.MessageData{
		FirstName:      templates.GreetingName(c.Name),
		Subject:        in.Decision.Subject,
		Message:        in.Decision.Message,
		Tone:           in.Decision.Tone,
		Link:           set.Declines.Plan(cmp.Or(in.Decision.DeclineClass, recoup.DeclineUnknown)).Link,
		Incentive:      messageIncentive(in.Decision.Incentive, in.OfferExpiresAt, c.Locale),
		AmountDue:      money.Format(in.AmountMinor, in.Currency, c.Locale),
		PaymentURL:     a.link(a.PaymentURL, in.InvoiceID, in.CustomerID),
		UnsubscribeURL: a.link(a.UnsubscribeURL, in.InvoiceID, in.CustomerID),
		Language:       c.Locale,
	}
	if ch == recoup.ChannelSMS {
		body, err := set.SMS(d)
		return rendered{text: body}, err
	}
	subject, text, html, err := set.Email(d)
	return rendered{subject: subject, text: text, html: html}, err
}

// OfferInput announces an incentive before the message that offers it.
type OfferInput struct {
	WorkflowID string
	InvoiceID  string
	CustomerID string
	Step       int
	Incentive  recoup.Incentive
	Now        time.Time
}

// OfferResult is the recorded offer.
type OfferResult struct {
	OfferKey        string
	ExpiresAt       time.Time
	BillingNotified bool
}

// AnnounceOffer records the offer and tells billing (webhook event dunning.offer) so that
// the promise is kept. Without a webhook the offer is recorded and logged.
func (a *DunningActivities) AnnounceOffer(ctx context.Context, in OfferInput) (OfferResult, error) {
	set := a.Prompts()
	key := fmt.Sprintf("%s/step-%d/offer", in.WorkflowID, in.Step)
	out := OfferResult{OfferKey: key, ExpiresAt: in.Now.AddDate(0, 0, set.Policy.OfferValidDays).UTC()}
	err := a.Store.SaveOffer(ctx, postgres.Offer{OfferKey: key, WorkflowID: in.WorkflowID, InvoiceID: in.InvoiceID,
		CustomerID: in.CustomerID, Kind: in.Incentive.Kind, Value: in.Incentive.Value, ExpiresAt: out.ExpiresAt})
	if err != nil {
		return OfferResult{}, err
	}
	if a.Webhook == nil || !a.Webhook.Enabled() {
		a.Metrics.IncentiveOffered(in.Incentive.Kind, in.Incentive.Value)
		a.logger(ctx).Info("offer recorded; BILLING_WEBHOOK_URL is not set, so billing is told by this log line only",
			"offer_key", key, "kind", in.Incentive.Kind, "value", in.Incentive.Value, "expires_at", out.ExpiresAt)
		return out, nil
	}
	err = a.Webhook.Send(ctx, webhook.Event{ID: key, Type: "dunning.offer", Payload: map[string]any{
		"workflow_id": in.WorkflowID, "invoice_id": in.InvoiceID, "customer_id": in.CustomerID,
		"kind": in.Incentive.Kind, "value": in.Incentive.Value, "expires_at": out.ExpiresAt,
	}}, time.Now()) // signed now: a retry hours later must still verify
	if err != nil {
		a.Metrics.ProviderError("webhook", err)
		return OfferResult{}, webhookError(err)
	}
	if err := a.Store.MarkOfferAnnounced(ctx, key); err != nil {
		return OfferResult{}, err
	}
	a.Metrics.IncentiveOffered(in.Incentive.Kind, in.Incentive.Value)
	out.BillingNotified = true
	return out, nil
}

func webhookError(err error) error {
	if provider.IsPermanent(err) {
		return temporal.NewNonRetryableApplicationError(err.Error(), recoup.ErrTypeWebhookRejected, err)
	}
	return err
}

// messageIncentive is what the templates need of an offer, its date in the customer's locale.
func messageIncentive(inc recoup.Incentive, expires time.Time, locale string) templates.Incentive {
	if inc.Kind == recoup.IncentiveNone || inc.Kind == "" {
		return templates.Incentive{}
	}
	return templates.Incentive{Kind: inc.Kind, Value: inc.Value, Expires: templates.FormatDate(expires, locale)}
}
