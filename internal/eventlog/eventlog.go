// Package eventlog accepts billing events: it validates them, records each in the PostgreSQL
// event log exactly once (with the customer snapshot, payment facts and consent it carries),
// and delivers the events of each invoice, in order, to the invoice's dunning run. An event
// is recorded before it is delivered, so an accepted event is never lost: a delivery that
// fails leaves it undelivered in the log to be delivered again, and an event for an invoice
// without a run waits in the log until the run starts. The Relay delivers what is recorded;
// KafkaHandlers record what `starter consume` reads.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// deliveryTimeout bounds one delivery to Temporal.
const deliveryTimeout = 10 * time.Second

// Ingestor records and delivers events.
type Ingestor struct {
	Store    *postgres.Store
	Temporal client.Client
	Logger   *slog.Logger
	Parallel int // invoices delivered at once by DeliverPending (default 4)
	// Metrics, when set, counts replies by outcome (NewRelay sets its own when nil).
	Metrics *observability.IngressMetrics

	feed detectorFeed // feeds the spike detector from the log (detectorfeed.go)
}

// Result says what happened to an event.
type Result struct {
	EventID    string
	Type       string
	WorkflowID string
	Duplicate  bool   // already recorded (same id and body)
	Delivered  bool   // reached the run, or was judged to have none to reach (now or earlier)
	Parked     bool   // waits in the log for the invoice's run to start
	Note       string // e.g. "started the dunning run", "no dunning run for this invoice yet; …"
	// ClampedFrom is the producer's occurred_at when it lay further in the future than the
	// allowed clock skew; the event was recorded (and is delivered) with OccurredAt instead.
	ClampedFrom time.Time
	OccurredAt  time.Time
}

// Record validates one event and records it in the event log, with the facts it carries,
// exactly once. A *events.ValidationError means the event was refused and nothing was
// recorded; postgres.ErrEventConflict means its id was already used for another event. When
// Record returns without error the event is durable: delivering it is the relay's job (or
// Accept's).
func (in *Ingestor) Record(ctx context.Context, raw []byte, source string) (Result, events.Event, error) {
	ev, err := events.Decode(raw)
	if err != nil {
		return Result{}, events.Event{}, err
	}
	res := Result{EventID: ev.EventID, Type: ev.Type, WorkflowID: recoup.WorkflowID(ev.InvoiceID)}
	rec, err := in.Store.RecordEvent(ctx, toStore(ev, source))
	if err != nil {
		return res, ev, err
	}
	res.Duplicate, res.ClampedFrom, res.OccurredAt = rec.Duplicate, rec.ClampedFrom, rec.OccurredAt
	if rec.DeliveredAt != nil {
		res.Delivered, res.Note = true, "duplicate of an event already delivered"
	}
	if rec.Clamped() && !rec.Duplicate {
		in.log().Warn("event occurred_at lies in the future beyond the allowed clock skew; recorded as received + skew",
			"event_id", ev.EventID, "type", ev.Type, "occurred_at", rec.ClampedFrom, "recorded_as", rec.OccurredAt)
	}
	ev.OccurredAt = rec.OccurredAt
	return res, ev, nil
}

func (in *Ingestor) log() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.Default()
}

// Accept records one event (see Record) and delivers its invoice's pending events at once,
// waiting for a relay that is delivering them to finish first. Any error after recording
// leaves the event in the log, undelivered, for the relay, and is returned.
func (in *Ingestor) Accept(ctx context.Context, raw []byte, source string) (Result, error) {
	res, ev, err := in.Record(ctx, raw, source)
	if err != nil || res.Delivered {
		return res, err
	}
	// Bounded: when Temporal is unreachable the event stays recorded for the relay.
	dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	// A failure's run starts only once the detector heard of it: feed it before claiming the
	// invoice (a claim holds a connection, which the feed would then compete for).
	// A duplicate was recorded earlier, and may have been fed since: it is asked about.
	if ev.Type == recoup.EventPaymentFailed {
		err = in.awaitFed(dctx, nil, ev.EventID, !res.Duplicate)
	}
	var claim *postgres.Claim
	var mine *Delivery // this event's delivery, when this call made it
	var after bool     // another delivery followed it under the claim
	if err == nil {
		claim, _, err = in.Store.ClaimInvoice(dctx, ev.InvoiceID, true)
	}
	if err == nil {
		_, err = in.deliverClaimed(dctx, claim, func(d Delivery) {
			if d.EventID == ev.EventID && d.Err == nil {
				mine, after = &d, false
				return
			}
			after = true
		})
		claim.Release()
	}
	// Delivered under the claim just now, as recorded (a delivered event stays delivered), or
	// parked with nothing after it: a later event's start releases the parked ones, and the
	// event's next delivery under the claim may then fail or not be reached.
	if mine != nil && (!mine.Parked || !after) {
		res.Delivered, res.Parked, res.Note = !mine.Parked, mine.Parked, mine.Note
		return res, nil
	}
	// Delivered by another (the relay, or a retry of this request), failed, or not reached.
	d, derr := in.Store.EventDelivery(context.WithoutCancel(ctx), ev.EventID)
	if derr != nil {
		return res, errors.Join(err, derr)
	}
	res.Delivered, res.Parked, res.Note = d.Delivered, d.Parked, d.Note
	if err != nil && !d.Delivered && !d.Parked {
		return res, fmt.Errorf("event %s recorded but not delivered yet: %w", ev.EventID, err)
	}
	return res, nil
}

// deliverOne delivers one recorded event of a claimed invoice as Claim.Route decides.
func (in *Ingestor) deliverOne(ctx context.Context, claim *postgres.Claim, p postgres.UndeliveredEvent) (Delivery, error) {
	d := Delivery{EventID: p.EventID, Waited: time.Since(p.ReceivedAt)}
	ev, err := events.Decode(p.Body)
	if err != nil {
		return d, fmt.Errorf("the recorded event no longer decodes: %w", err)
	}
	ev.OccurredAt = p.OccurredAt // as recorded: clamped when it lay in the future
	wfID := recoup.WorkflowID(ev.InvoiceID)
	// A run that Temporal no longer has is closed, and the event judged again (once).
	for range 2 {
		route, err := claim.Route(ctx, p)
		if err != nil {
			return d, err
		}
		d.Note = route.Note
		switch route.Action {
		case postgres.RoutePark:
			d.Parked = true
			return d, claim.Park(ctx, p.EventID, route.Note)
		case postgres.RouteIgnore:
			return d, claim.MarkDelivered(ctx, p.EventID, route.Episode, route.Note)
		case postgres.RouteStart:
			if err := in.start(ctx, claim, ev, route); err != nil {
				return d, err
			}
			return d, claim.MarkDelivered(ctx, p.EventID, route.Episode, route.Note)
		case postgres.RouteSignal:
			name, payload, err := signalFor(ev)
			if err != nil {
				return d, err
			}
			dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
			err = in.Temporal.SignalWorkflow(dctx, wfID, "", name, payload)
			cancel()
			var notFound *serviceerror.NotFound
			if errors.As(err, &notFound) {
				if err := claim.Gone(ctx, route.Episode); err != nil {
					return d, err
				}
				continue
			}
			if err != nil {
				return d, fmt.Errorf("signal %s to %s: %w", name, wfID, err)
			}
			d.Note = route.Note + " (" + name + ")"
			return d, claim.MarkDelivered(ctx, p.EventID, route.Episode, d.Note)
		}
	}
	return d, fmt.Errorf("event %s: the invoice's run vanished twice while delivering it", p.EventID)
}

// start starts (or joins, when a earlier attempt started it) the episode's run with ev, the
// payment.failed that opened it, and records the start, which releases the events parked for
// the run.
func (in *Ingestor) start(ctx context.Context, claim *postgres.Claim, ev events.Event, route postgres.Route) error {
	wfID := recoup.WorkflowID(ev.InvoiceID)
	// The detector hears of the failure first (it is fed from the log: detectorfeed.go), so
	// a failure that opens an incident can hold its own run.
	if err := in.awaitFed(ctx, claim, ev.EventID, false); err != nil {
		return err
	}
	pf := paymentFailed(ev)
	pf.Customer = nil // contact data stays in PostgreSQL, out of Temporal's history
	opts := client.StartWorkflowOptions{
		ID:        wfID,
		TaskQueue: recoup.TaskQueue,
		// PostgreSQL (invoice_runs) decides when an invoice gets another run: only for a
		// failure after the previous run ended. Temporal must then allow it.
		// A running run is joined (SignalWithStart's conflict policy).
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			recoup.CustomerIDKey.ValueSet(ev.CustomerID),
			recoup.InvoiceIDKey.ValueSet(ev.InvoiceID),
			recoup.DunningStatusKey.ValueSet(string(recoup.StatusActive)),
			recoup.DunningStepKey.ValueSet(0),
			recoup.AmountDueKey.ValueSet(ev.AmountMinor),
			recoup.CurrencyKey.ValueSet(ev.Currency),
		),
		StaticSummary: staticSummary(ev, route.Episode),
		StaticDetails: staticDetails(ev),
	}
	dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	run, err := in.Temporal.SignalWithStartWorkflow(dctx, wfID, recoup.SignalPaymentFailed, pf, opts,
		recoup.WorkflowType, recoup.DunningInput{Failure: pf, Episode: route.Episode})
	cancel()
	if err != nil {
		return fmt.Errorf("start %s (run %d): %w", wfID, route.Episode, err)
	}
	return claim.Started(ctx, route.Episode, run.GetRunID())
}

func paymentFailed(ev events.Event) recoup.PaymentFailed {
	return recoup.PaymentFailed{EventID: ev.EventID, InvoiceID: ev.InvoiceID, CustomerID: ev.CustomerID,
		AttemptID: ev.AttemptID, AmountMinor: ev.AmountMinor, Currency: ev.Currency,
		FailureCode: ev.FailureCode, AdviceCode: ev.AdviceCode, OccurredAt: ev.OccurredAt, Customer: ev.Customer,
		Gateway: ev.Gateway, CardBIN: ev.CardBIN, IssuerCountry: ev.IssuerCountry}
}

func signalFor(ev events.Event) (string, any, error) {
	switch ev.Type {
	case recoup.EventPaymentFailed: // a later failure of the invoice, to its open run
		pf := paymentFailed(ev)
		pf.Customer = nil // contact data stays in PostgreSQL, out of Temporal's history
		return recoup.SignalPaymentFailed, pf, nil
	case recoup.EventRetrySucceeded, recoup.EventRetryFailed:
		return recoup.SignalRetryResult, recoup.RetryResult{EventID: ev.EventID, AttemptID: ev.AttemptID,
			Succeeded: ev.Type == recoup.EventRetrySucceeded, FailureCode: ev.FailureCode, AdviceCode: ev.AdviceCode,
			OccurredAt: ev.OccurredAt}, nil
	case recoup.EventRecovered, recoup.EventPaymentSucceeded:
		return recoup.SignalRecovered, recoup.Recovered{EventID: ev.EventID, OccurredAt: ev.OccurredAt}, nil
	case recoup.EventCancel:
		return recoup.SignalCancel, recoup.Cancel{EventID: ev.EventID, Reason: ev.Reason, OccurredAt: ev.OccurredAt}, nil
	case recoup.EventPause:
		return recoup.SignalPause, recoup.Pause{EventID: ev.EventID, Reason: ev.Reason, OccurredAt: ev.OccurredAt}, nil
	case recoup.EventResume:
		return recoup.SignalResume, recoup.Resume{EventID: ev.EventID, OccurredAt: ev.OccurredAt}, nil
	case recoup.EventPaymentMethodUpdated: // to the invoice's open run, like a pause
		return recoup.SignalPaymentMethodUpdated, recoup.PaymentMethodUpdated{EventID: ev.EventID,
			RetryRequested: ev.RetryRequested, OccurredAt: ev.OccurredAt}, nil
	case recoup.EventOptOut:
		return recoup.SignalOptOut, recoup.OptOut{EventID: ev.EventID, Channel: ev.Channel, OccurredAt: ev.OccurredAt}, nil
	}
	// Every type the log accepts is routed above; a new type must be added there, never
	// delivered as some other signal.
	return "", nil, fmt.Errorf("no signal for event type %q (a type the log accepts must be routed in signalFor)", ev.Type)
}

// toStore maps an event to what the log records with it.
func toStore(ev events.Event, source string) postgres.Event {
	se := postgres.Event{EventID: ev.EventID, Type: ev.Type, Source: source, InvoiceID: ev.InvoiceID,
		CustomerID: ev.CustomerID, OccurredAt: ev.OccurredAt, Body: ev.Raw}
	switch ev.Type {
	case recoup.EventPaymentFailed:
		se.Attempt = &postgres.PaymentAttempt{AttemptID: ev.AttemptID, FailureCode: ev.FailureCode,
			AmountMinor: ev.AmountMinor, Currency: ev.Currency}
		se.Invoice = &postgres.Invoice{AmountMinor: ev.AmountMinor, Currency: ev.Currency, Status: "open"}
		if c := ev.Customer; c != nil {
			se.Customer = &postgres.Customer{CustomerID: ev.CustomerID, Name: c.Name, Email: c.Email, Phone: c.Phone,
				Locale: c.Locale, TimeZone: c.TimeZone, Plan: c.Plan, EmailConsentSet: c.EmailConsent,
				SMSConsentSet: c.SMSConsent, UpdatedAt: ev.OccurredAt}
		}
	case recoup.EventRetrySucceeded, recoup.EventRetryFailed:
		se.Attempt = &postgres.PaymentAttempt{AttemptID: ev.AttemptID, FailureCode: ev.FailureCode,
			Succeeded: ev.Type == recoup.EventRetrySucceeded}
	case recoup.EventOptOut:
		se.OptOut = string(ev.Channel)
	}
	return se
}

// Delivery is the outcome of delivering one recorded event.
type Delivery struct {
	EventID string
	Waited  time.Duration // from being received to being delivered
	Parked  bool          // kept for the invoice's run, which has not started
	Note    string
	Err     error
}

// maxPerClaim bounds how many events one claim delivers before it gives the invoice up (the
// next round claims it again), so that one busy invoice cannot keep a relay for ever.
const maxPerClaim = 1000

// DeliverPending delivers the recorded events of up to limit invoices whose next event is
// due, calling report (which must be safe for concurrent use) after each event. Invoices are
// delivered concurrently (at most Parallel at once), each by whichever relay claims it
// first: the events of one invoice one after another, in the log's order, by one relay at a
// time. An invoice stops at its first failure, which is recorded on the event (it is tried
// again after a backoff). It returns how many events were delivered or parked, and the
// first failure.
func (in *Ingestor) DeliverPending(ctx context.Context, limit int, report func(Delivery)) (int, error) {
	invoices, err := in.Store.DueInvoices(ctx, limit)
	if err != nil {
		return 0, err
	}
	parallel := in.Parallel
	if parallel <= 0 {
		parallel = 4
	}
	// Each claim holds a connection: leave the others to the rest of the process.
	parallel = max(1, min(parallel, int(in.Store.Pool().Config().MaxConns)/2))
	var (
		mu        sync.Mutex
		delivered int
		firstErr  error
		wg        sync.WaitGroup
		sem       = make(chan struct{}, parallel)
	)
	for _, inv := range invoices {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			claim, ok, err := in.Store.ClaimInvoice(ctx, inv, false)
			n := 0
			if ok {
				n, err = in.deliverClaimed(ctx, claim, report)
				claim.Release()
			}
			mu.Lock()
			delivered += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return delivered, firstErr
}

// deliverClaimed delivers a claimed invoice's pending events in order until none is left or
// one fails, which is recorded on it. It reads the next event before each delivery rather
// than listing them once: a run's start releases the events kept for it, which may come
// before events already recorded (a pause kept since the last run ended, before a resume
// that arrived with the failure starting the next run), and an event recorded meanwhile
// may be dated before the rest. Delivered from a stale list, the later event would reach
// the run first (the resume refused, "not paused", and the pause holding the run for ever).
func (in *Ingestor) deliverClaimed(ctx context.Context, claim *postgres.Claim, report func(Delivery)) (int, error) {
	n := 0
	for range maxPerClaim {
		p, ok, err := claim.Next(ctx)
		if err != nil || !ok {
			return n, err
		}
		d, err := in.deliverOne(ctx, claim, p)
		d.Err = err
		if report != nil {
			report(d)
		}
		if err != nil {
			if merr := claim.MarkDeliveryFailed(context.WithoutCancel(ctx), p.EventID, err.Error()); merr != nil {
				err = errors.Join(err, merr)
			}
			return n, fmt.Errorf("deliver event %s: %w", p.EventID, err)
		}
		n++
	}
	return n, nil
}

// staticSummary is the run's one-line summary in the Web UI: invoice, amount, the run's
// number when it is not the invoice's first, plan. It carries no contact data.
func staticSummary(ev events.Event, episode int) string {
	s := fmt.Sprintf("Invoice %s · %s", ev.InvoiceID, money.Format(ev.AmountMinor, ev.Currency, "en"))
	if episode > 1 {
		s += fmt.Sprintf(" · run %d", episode)
	}
	if ev.Customer != nil && ev.Customer.Plan != "" {
		s += " · plan " + ev.Customer.Plan
	}
	return s
}

func staticDetails(ev events.Event) string {
	d := fmt.Sprintf("**Customer** %s\n\n**Amount due** %s (%d minor units)\n\n**First failure** %s",
		ev.CustomerID, money.Format(ev.AmountMinor, ev.Currency, "en"), ev.AmountMinor, ev.OccurredAt.Format(time.RFC3339))
	if ev.FailureCode != "" {
		d += " · " + ev.FailureCode
	}
	return d
}
