// Package ingest accepts billing events: it validates them, records each in the PostgreSQL
// event log exactly once (with the customer snapshot and payment facts it carries), and
// delivers it to the invoice's dunning run — SignalWithStart for payment.failed, Signal for
// the others. An event is recorded before it is delivered, so an accepted event is never
// lost: a delivery that fails leaves it undelivered in the log to be delivered again.
package ingest

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
	"github.com/recoup-dunning/recoup/internal/money"
	"github.com/recoup-dunning/recoup/internal/spike"
	"github.com/recoup-dunning/recoup/internal/store"
	"github.com/recoup-dunning/recoup/workflows"
)

// deliveryTimeout bounds one delivery to Temporal.
const deliveryTimeout = 10 * time.Second

// Ingestor records and delivers events.
type Ingestor struct {
	Store    *store.Store
	Temporal client.Client
	Logger   *slog.Logger
	Parallel int // invoices delivered at once by DeliverPending (default 4)

	feed feeder // batches failure records for the spike detector
}

// feeder group-commits failure records to the spike detector: one signal carries every
// record that arrived while the previous signal was in flight, so the detector gets one
// signal per round trip instead of one per event, and no caller returns before its record
// is with the detector.
type feeder struct {
	mu       sync.Mutex
	flushing bool
	pending  []spike.Record
	waiters  []chan error
}

// maxBatch bounds one signal's records (a record is about 150 bytes of JSON).
const maxBatch = 1000

// Result says what happened to an event.
type Result struct {
	EventID    string
	Type       string
	WorkflowID string
	Duplicate  bool   // already recorded (same id and body)
	Delivered  bool   // reached the run (now or earlier)
	Note       string // e.g. "started or joined the dunning run", "no open dunning run"
}

// Record validates one event and records it in the event log, with the facts it carries,
// exactly once. A *events.ValidationError means the event was refused and nothing was
// recorded; store.ErrEventConflict means its id was already used for another event. When
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
	res.Duplicate = rec.Duplicate
	if rec.DeliveredAt != nil {
		res.Delivered, res.Note = true, "duplicate of an event already delivered"
	}
	return res, ev, nil
}

// Accept records one event (see Record) and delivers it at once. Any error after recording
// leaves the event in the log, undelivered, for the relay, and is returned.
func (in *Ingestor) Accept(ctx context.Context, raw []byte, source string) (Result, error) {
	res, ev, err := in.Record(ctx, raw, source)
	if err != nil || res.Delivered {
		return res, err
	}
	// Bounded: when Temporal is unreachable the event stays recorded for the relay.
	dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	note, err := in.Deliver(dctx, ev)
	cancel()
	if err != nil {
		if merr := in.Store.MarkDeliveryFailed(context.WithoutCancel(ctx), ev.EventID, err.Error()); merr != nil {
			err = errors.Join(err, merr)
		}
		return res, fmt.Errorf("event %s recorded but not delivered yet: %w", ev.EventID, err)
	}
	res.Delivered, res.Note = true, note
	return res, in.Store.MarkDelivered(ctx, ev.EventID)
}

// Deliver hands a recorded event to its dunning run.
func (in *Ingestor) Deliver(ctx context.Context, ev events.Event) (string, error) {
	wfID := recoup.WorkflowID(ev.InvoiceID)
	if ev.Type == recoup.EventPaymentFailed {
		// Events can arrive out of order: a recovery (or cancel) that happened after this
		// failure, even if it arrived first, means there is nothing to dun.
		if settledBy, ok, err := in.Store.SettledBy(ctx, ev.InvoiceID, ev.OccurredAt); err != nil {
			return "", err
		} else if ok {
			return "the invoice was already settled by event " + settledBy + "; no dunning started", nil
		}
		// The detector hears of the failure first, so a failure that opens an incident can
		// hold its own run.
		if err := in.feedDetector(ctx, ev); err != nil {
			return "", err
		}
		pf := paymentFailed(ev)
		pf.Customer = nil // contact data stays in PostgreSQL, out of Temporal's history
		opts := client.StartWorkflowOptions{
			ID:        wfID,
			TaskQueue: recoup.TaskQueue,
			// One run per invoice, ever: a payment.failed after the run ended is recorded
			// but does not start a second run.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.CustomerIDKey.ValueSet(ev.CustomerID),
				workflows.InvoiceIDKey.ValueSet(ev.InvoiceID),
				workflows.DunningStatusKey.ValueSet(string(recoup.StatusActive)),
				workflows.DunningStepKey.ValueSet(0),
				workflows.AmountDueKey.ValueSet(ev.AmountMinor),
				workflows.CurrencyKey.ValueSet(ev.Currency),
			),
			StaticSummary: staticSummary(ev),
			StaticDetails: staticDetails(ev),
		}
		_, err := in.Temporal.SignalWithStartWorkflow(ctx, wfID, recoup.SignalPaymentFailed, pf, opts,
			recoup.WorkflowType, recoup.DunningInput{Failure: pf})
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return "the invoice's dunning run has already ended; recorded only", nil
		}
		if err != nil {
			return "", fmt.Errorf("start or signal %s: %w", wfID, err)
		}
		return "started or joined the dunning run", nil
	}
	name, payload := signalFor(ev)
	err := in.Temporal.SignalWorkflow(ctx, wfID, "", name, payload)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return "no open dunning run for this invoice; recorded only", nil
	}
	if err != nil {
		return "", fmt.Errorf("signal %s to %s: %w", name, wfID, err)
	}
	return "signaled the dunning run (" + name + ")", nil
}

// feedDetector hands the failure-spike detector a compact record of a payment failure
// (no PII: gateway, BIN prefix, issuer country, failure code, amount bucket, time),
// starting the detector if it is not running. It returns once the record's signal was
// accepted by Temporal.
func (in *Ingestor) feedDetector(ctx context.Context, ev events.Event) error {
	rec := spike.Record{At: ev.OccurredAt, Gateway: ev.Gateway, BIN: ev.CardBIN, Country: ev.IssuerCountry,
		Code: ev.FailureCode, AmountBucket: spike.AmountBucket(ev.AmountMinor)}
	done := make(chan error, 1)
	f := &in.feed
	f.mu.Lock()
	f.pending = append(f.pending, rec)
	f.waiters = append(f.waiters, done)
	if !f.flushing {
		f.flushing = true
		go in.flushDetector()
	}
	f.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("feed the spike detector: %w", ctx.Err())
	}
}

// flushDetector signals the pending records, batch after batch, until none are left.
func (in *Ingestor) flushDetector() {
	f := &in.feed
	for {
		f.mu.Lock()
		n := min(len(f.pending), maxBatch)
		if n == 0 {
			f.flushing = false
			f.mu.Unlock()
			return
		}
		batch, waiters := f.pending[:n:n], f.waiters[:n:n]
		f.pending, f.waiters = f.pending[n:], f.waiters[n:]
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
		opts := client.StartWorkflowOptions{
			ID:                       recoup.DetectorWorkflowID,
			TaskQueue:                recoup.TaskQueue,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			StaticSummary:            "Failure-spike detector",
			StaticDetails:            "Watches every payment failure for spikes per gateway, BIN, issuer country and failure code. `starter incidents` lists what it found.",
		}
		_, err := in.Temporal.SignalWithStartWorkflow(ctx, recoup.DetectorWorkflowID, recoup.SignalFailures, batch, opts,
			recoup.DetectorWorkflowType, workflows.DetectorInput{})
		cancel()
		if err != nil {
			err = fmt.Errorf("feed the spike detector: %w", err)
		}
		for _, w := range waiters {
			w <- err
		}
	}
}

func paymentFailed(ev events.Event) recoup.PaymentFailed {
	return recoup.PaymentFailed{EventID: ev.EventID, InvoiceID: ev.InvoiceID, CustomerID: ev.CustomerID,
		AttemptID: ev.AttemptID, AmountMinor: ev.AmountMinor, Currency: ev.Currency,
		FailureCode: ev.FailureCode, OccurredAt: ev.OccurredAt, Customer: ev.Customer,
		Gateway: ev.Gateway, CardBIN: ev.CardBIN, IssuerCountry: ev.IssuerCountry}
}

func signalFor(ev events.Event) (string, any) {
	switch ev.Type {
	case recoup.EventRetrySucceeded, recoup.EventRetryFailed:
		return recoup.SignalRetryResult, recoup.RetryResult{EventID: ev.EventID, AttemptID: ev.AttemptID,
			Succeeded: ev.Type == recoup.EventRetrySucceeded, FailureCode: ev.FailureCode, OccurredAt: ev.OccurredAt}
	case recoup.EventRecovered:
		return recoup.SignalRecovered, recoup.Recovered{EventID: ev.EventID, OccurredAt: ev.OccurredAt}
	case recoup.EventCancel:
		return recoup.SignalCancel, recoup.Cancel{EventID: ev.EventID, Reason: ev.Reason, OccurredAt: ev.OccurredAt}
	case events.EventPause:
		return recoup.SignalPause, recoup.Pause{EventID: ev.EventID, Reason: ev.Reason, OccurredAt: ev.OccurredAt}
	case events.EventResume:
		return recoup.SignalResume, recoup.Resume{EventID: ev.EventID, OccurredAt: ev.OccurredAt}
	default: // events.EventOptOut
		return recoup.SignalOptOut, recoup.OptOut{EventID: ev.EventID, Channel: ev.Channel, OccurredAt: ev.OccurredAt}
	}
}

// toStore maps an event to what the log records with it.
func toStore(ev events.Event, source string) store.Event {
	se := store.Event{EventID: ev.EventID, Type: ev.Type, Source: source, InvoiceID: ev.InvoiceID,
		CustomerID: ev.CustomerID, OccurredAt: ev.OccurredAt, Body: ev.Raw}
	switch ev.Type {
	case recoup.EventPaymentFailed:
		se.Attempt = &store.PaymentAttempt{AttemptID: ev.AttemptID, FailureCode: ev.FailureCode,
			AmountMinor: ev.AmountMinor, Currency: ev.Currency}
		se.Invoice = &store.Invoice{AmountMinor: ev.AmountMinor, Currency: ev.Currency, Status: "open"}
		if c := ev.Customer; c != nil {
			se.Customer = &store.Customer{CustomerID: ev.CustomerID, Name: c.Name, Email: c.Email, Phone: c.Phone,
				Locale: c.Locale, TimeZone: c.TimeZone, Plan: c.Plan, EmailConsentSet: c.EmailConsent,
				SMSConsentSet: c.SMSConsent, UpdatedAt: ev.OccurredAt}
		}
	case recoup.EventRetrySucceeded, recoup.EventRetryFailed:
		se.Attempt = &store.PaymentAttempt{AttemptID: ev.AttemptID, FailureCode: ev.FailureCode,
			Succeeded: ev.Type == recoup.EventRetrySucceeded}
	}
	return se
}

// Delivery is the outcome of delivering one recorded event.
type Delivery struct {
	EventID string
	Waited  time.Duration // from being received to being delivered
	Err     error
}

// DeliverPending delivers up to limit recorded events that are due, calling report (which
// must be safe for concurrent use) after each. Invoices are delivered concurrently (at most
// Parallel at once), the events of one invoice one after another in occurred_at order. An
// invoice stops at its first failure, which is recorded on the event (it is tried again
// after a backoff). It returns how many were delivered and the first failure.
func (in *Ingestor) DeliverPending(ctx context.Context, limit int, report func(Delivery)) (int, error) {
	pending, err := in.Store.Undelivered(ctx, limit)
	if err != nil {
		return 0, err
	}
	var groups [][]store.UndeliveredEvent
	index := map[string]int{}
	for _, p := range pending {
		i, ok := index[p.InvoiceID]
		if !ok {
			i = len(groups)
			index[p.InvoiceID] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], p)
	}
	parallel := in.Parallel
	if parallel <= 0 {
		parallel = 4
	}
	var (
		mu        sync.Mutex
		delivered int
		firstErr  error
		wg        sync.WaitGroup
		sem       = make(chan struct{}, parallel)
	)
	for _, g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, p := range g {
				err := in.deliverRecorded(ctx, p)
				if report != nil {
					report(Delivery{EventID: p.EventID, Waited: time.Since(p.ReceivedAt), Err: err})
				}
				if err != nil {
					if merr := in.Store.MarkDeliveryFailed(context.WithoutCancel(ctx), p.EventID, err.Error()); merr != nil {
						err = errors.Join(err, merr)
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("deliver event %s: %w", p.EventID, err)
					}
					mu.Unlock()
					return
				}
				mu.Lock()
				delivered++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return delivered, firstErr
}

func (in *Ingestor) deliverRecorded(ctx context.Context, p store.UndeliveredEvent) error {
	ev, err := events.Decode(p.Body)
	if err != nil {
		return fmt.Errorf("the recorded event no longer decodes: %w", err)
	}
	dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	if _, err := in.Deliver(dctx, ev); err != nil {
		return err
	}
	return in.Store.MarkDelivered(ctx, p.EventID)
}

// staticSummary is the run's one-line summary in the Web UI: invoice, amount, plan. It
// carries no contact data.
func staticSummary(ev events.Event) string {
	s := fmt.Sprintf("Invoice %s · %s", ev.InvoiceID, money.Format(ev.AmountMinor, ev.Currency, "en"))
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
