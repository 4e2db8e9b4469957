// Package activities holds every step of a dunning run that touches the outside world:
// PostgreSQL, the LLM, SendGrid, Twilio and the billing webhook. Activities are methods of
// the struct of their workflow (DunningActivities, DetectorActivities), which holds their
// dependencies; the workflows call them through typed method values. Each takes one input
// struct and returns one result struct.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/retry"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

func settledError(e *postgres.SettledError) error {
	return temporal.NewNonRetryableApplicationError(e.Error(), recoup.ErrTypeSettled, nil, recoup.SettledBy{EventID: e.EventID, Type: e.Type})
}

// LLM is the model client (internal/openai.Client).
type LLM interface {
	Complete(ctx context.Context, r openai.Request) (openai.Response, error)
	Model() string
}

// EmailSender sends one email (internal/sendgrid.Sender).
type EmailSender interface {
	Send(ctx context.Context, m sendgrid.Message) (string, error)
}

// SMSSender sends one SMS (internal/twilio.Sender).
type SMSSender interface {
	Send(ctx context.Context, m twilio.Message) (string, error)
}

// Webhook posts signed events to the billing service (internal/webhook.Sender).
type Webhook interface {
	Enabled() bool
	Send(ctx context.Context, e webhook.Event, now time.Time) error
}

// Base is what every activity needs.
type Base struct {
	Store   *postgres.Store
	Prompts func() *templates.Set // the active prompt set
	Logger  *slog.Logger
	// Metrics records the business metrics; nil records nothing.
	Metrics *observability.Business
}

// DunningActivities are the activities of DunningWorkflow, with their dependencies. Nil
// LLM means the rules policy decides; nil Email or SMS means log delivery mode for that
// channel.
type DunningActivities struct {
	Base
	LLM     LLM
	Email   EmailSender
	SMS     SMSSender
	Webhook Webhook

	// Schedule overrides the policy's schedule when set (the demo uses seconds).
	Schedule []time.Duration
	// FinalWait overrides the policy's wait after the last step when set.
	FinalWait time.Duration
	// ContactCap overrides the policy's contact cap when set (the demo's compressed schedule).
	ContactCap *policy.ContactCap
	// IgnoreQuietHours sends at any local time (demo only).
	IgnoreQuietHours bool
	// Clock is the activities' clock (time.Now when nil); the send-time checks use it.
	Clock func() time.Time
	// PaymentURL and UnsubscribeURL are templates where {invoice_id} and {customer_id} are
	// replaced; the links are added by the message templates, never by the model.
	PaymentURL     string
	UnsubscribeURL string
	// ReconcileWindow is how long after an attempt whose outcome is unknown a provider event
	// naming it may still arrive (RECOUP_RECONCILE_WINDOW; 30 minutes when zero). None by
	// then proves the provider never accepted it: the step is sent again, once.
	ReconcileWindow time.Duration
	// HearsEvents says, per channel, whether this deployment can receive the channel's
	// provider's delivery events (email: SENDGRID_WEBHOOK_PUBLIC_KEY set; sms: Twilio's status
	// callbacks go to the verified URL; see config.HearsEvents). Only then may the absence of
	// an event after the window lead to a resend; otherwise an unknown outcome stays
	// reconcile and is never resent blind. Nil hears none.
	HearsEvents map[recoup.Channel]bool
	// RetryPolicy is prompts/retry.yaml (retry.DefaultPolicy when nil); ClassifyDecline maps
	// a failure code to its decline class (nil: the prompt set's decline table,
	// prompts/declines.yaml).
	RetryPolicy     *retry.Policy
	ClassifyDecline func(code string) recoup.DeclineClass
	// Payer, when set (RECOUP_STRIPE_EXECUTOR=1), pays the invoice at the advised time.
	Payer InvoicePayer
}

// DefaultReconcileWindow is the reconcile window when none is configured.
const DefaultReconcileWindow = 30 * time.Minute

func (a *DunningActivities) reconcileWindow() time.Duration {
	if a.ReconcileWindow > 0 {
		return a.ReconcileWindow
	}
	return DefaultReconcileWindow
}

// DetectorActivities are the activities of SpikeDetectorWorkflow, with their dependencies.
type DetectorActivities struct {
	Base
	// Signaler releases runs held by a failure-spike incident (the worker's Temporal client).
	Signaler Signaler
	// Alerts receives failure-spike incidents as signed webhooks (nil or disabled: log only);
	// AlertEmail, when set, receives them by email through Email.
	Alerts     Webhook
	AlertEmail string
	Email      EmailSender
}

// Activities are the activities a worker registers, by workflow. Each struct is registered
// as a whole: its exported methods are the activities, named after them (recorded
// histories refer to them by these names).
type Activities struct {
	Dunning  *DunningActivities
	Detector *DetectorActivities
}

func (a *Base) logger(ctx context.Context) *slog.Logger {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		l = l.With("workflow_id", info.WorkflowExecution.ID, "run_id", info.WorkflowExecution.RunID,
			"activity", info.ActivityType.Name, "attempt", info.Attempt)
	}
	return l
}

func (a *DunningActivities) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

func (a *DunningActivities) link(tmpl, invoiceID, customerID string) string {
	return strings.NewReplacer("{invoice_id}", invoiceID, "{customer_id}", customerID).Replace(tmpl)
}

// PlanRunInput starts a run's bookkeeping.
type PlanRunInput struct {
	WorkflowID string
	InvoiceID  string
	CustomerID string
	StartedAt  time.Time
}

// PlanRunResult is the run's schedule.
type PlanRunResult struct {
	Schedule      []time.Duration // offsets of the steps from the run's start
	FinalWait     time.Duration   // wait for a retry outcome after the last step before exhausting
	PolicyVersion string
	// Holdout is the run's holdout arm (policy.ArmControl, policy.ArmTreatment, or "" when
	// the holdout is off), recorded in dunning_runs; HoldoutTreatment is the control arm's
	// treatment. DecideStrategy reads the recorded arm, so the workflow needs neither.
	Holdout          string `json:",omitempty"`
	HoldoutTreatment string `json:",omitempty"`
}

// PlanRun records the run in PostgreSQL and returns the follow-up schedule in force.
func (a *DunningActivities) PlanRun(ctx context.Context, in PlanRunInput) (PlanRunResult, error) {
	if err := a.Store.StartRun(ctx, in.WorkflowID, in.InvoiceID, in.CustomerID, in.StartedAt); err != nil {
		return PlanRunResult{}, err
	}
	a.Metrics.RunStarted()
	set := a.Prompts()
	sched := a.Schedule
	if len(sched) == 0 {
		sched = set.Policy.Schedule()
	}
	final := a.FinalWait
	if final <= 0 {
		final = time.Duration(set.Policy.FinalWaitDays) * 24 * time.Hour
	}
	arm, treatment, err := a.Store.RecordHoldout(ctx, in.WorkflowID, set.Policy.Holdout.ArmFor(in.InvoiceID),
		set.Policy.Holdout.ControlTreatment())
	if err != nil {
		return PlanRunResult{}, err
	}
	return PlanRunResult{Schedule: sched, FinalWait: final, PolicyVersion: set.Version,
		Holdout: arm, HoldoutTreatment: treatment}, nil
}

// FetchHistoryInput names the customer whose history is needed.
type FetchHistoryInput struct {
	WorkflowID string
	CustomerID string
	InvoiceID  string
	Now        time.Time
}

// CustomerHistory is what the decision sees of a customer: no name, email or phone.
type CustomerHistory struct {
	CustomerID           string
	Plan                 string
	Locale               string
	TimeZone             string
	TenureDays           int
	LifetimeValueMinor   int64
	EmailReachable       bool // has an email address, consented to email, and no provider proved it undeliverable
	SMSReachable         bool // has a phone number, consented to SMS, and no provider proved it undeliverable
	PaymentsSucceeded    int  // in the last 12 months
	PaymentsFailed       int  // in the last 12 months
	EarlierRuns          int
	EarlierRunsRecovered int
	MessagesThisRun      int
}

// FetchCustomerHistory loads the customer's profile and history. An unknown customer is a
// non-retryable UnknownCustomer error.
func (a *DunningActivities) FetchCustomerHistory(ctx context.Context, in FetchHistoryInput) (CustomerHistory, error) {
	h, err := a.Store.CustomerHistory(ctx, in.CustomerID)
	if errors.Is(err, postgres.ErrUnknownCustomer) {
		return CustomerHistory{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("unknown customer %q: no profile was imported and the payment.failed event carried no customer snapshot", in.CustomerID),
			recoup.ErrTypeUnknownCustomer, err)
	}
	if err != nil {
		return CustomerHistory{}, err
	}
	c := h.Customer
	out := CustomerHistory{
		CustomerID:         c.CustomerID,
		Plan:               c.Plan,
		Locale:             c.Locale,
		TimeZone:           c.TimeZone,
		LifetimeValueMinor: c.LifetimeValueMinor,
		EmailReachable:     c.Email != "" && c.EmailConsent && c.EmailUndeliverable == "",
		SMSReachable:       c.Phone != "" && c.SMSConsent && c.SMSUndeliverable == "",
	}
	if !c.CustomerSince.IsZero() {
		out.TenureDays = int(in.Now.Sub(c.CustomerSince).Hours() / 24)
	}
	yearAgo := in.Now.AddDate(-1, 0, 0)
	for _, p := range h.Payments {
		if p.OccurredAt.Before(yearAgo) {
			continue
		}
		if p.Succeeded {
			out.PaymentsSucceeded++
		} else {
			out.PaymentsFailed++
		}
	}
	for _, r := range h.Runs {
		if r.WorkflowID == in.WorkflowID {
			continue
		}
		out.EarlierRuns++
		if r.Outcome == string(recoup.StatusRecovered) {
			out.EarlierRunsRecovered++
		}
	}
	for _, m := range h.Messages {
		if m.WorkflowID == in.WorkflowID {
			out.MessagesThisRun++
		}
	}
	return out, nil
}

// FinishRunInput records how a run ended.
type FinishRunInput struct {
	WorkflowID  string
	InvoiceID   string
	CustomerID  string
	Outcome     recoup.Status
	Reason      string
	Steps       int
	AmountMinor int64
	Currency    string
	EndedAt     time.Time
}

// FinishRunResult says whether billing was notified.
type FinishRunResult struct {
	BillingNotified bool
}

// FinishRun records the outcome. An exhausted run is announced to billing by the outbound
// webhook (event dunning.exhausted), or logged when no webhook is configured.
func (a *DunningActivities) FinishRun(ctx context.Context, in FinishRunInput) (FinishRunResult, error) {
	if err := a.Store.FinishRun(ctx, in.WorkflowID, in.InvoiceID, in.CustomerID, string(in.Outcome), in.Reason, in.Steps, in.EndedAt); err != nil {
		if settled := (*postgres.SettledError)(nil); errors.As(err, &settled) {
			return FinishRunResult{}, settledError(settled) // not exhausted: the run ends with the settle
		}
		return FinishRunResult{}, err
	}
	if in.Outcome != recoup.StatusExhausted {
		a.Metrics.RunEnded(string(in.Outcome))
		return FinishRunResult{}, nil
	}
	payload := map[string]any{
		"workflow_id": in.WorkflowID, "invoice_id": in.InvoiceID, "customer_id": in.CustomerID,
		"amount_minor": in.AmountMinor, "currency": in.Currency, "steps": in.Steps, "reason": in.Reason,
		"ended_at": in.EndedAt,
	}
	if a.Webhook == nil || !a.Webhook.Enabled() {
		a.logger(ctx).Info("dunning exhausted; BILLING_WEBHOOK_URL is not set, so billing is told by this log line only",
			"invoice_id", in.InvoiceID, "customer_id", in.CustomerID, "steps", in.Steps)
		a.Metrics.RunEnded(string(in.Outcome))
		return FinishRunResult{}, nil
	}
	err := a.Webhook.Send(ctx, webhook.Event{ID: in.WorkflowID + "/exhausted", Type: "dunning.exhausted", Payload: payload}, time.Now()) // signed now: a retry hours later must still verify
	if err != nil {
		a.Metrics.ProviderError("webhook", err)
		return FinishRunResult{}, webhookError(err)
	}
	a.Metrics.RunEnded(string(in.Outcome))
	return FinishRunResult{BillingNotified: true}, nil
}
