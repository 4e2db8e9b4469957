// Package recoup is the public contract of the Recoup dunning engine: the events the billing
// service sends, the signals, query and statuses of a dunning run, the task queue and the
// workflow-ID helper. It imports nothing of Recoup's own, so a Go billing service can import
// it to build events and signals that the engine accepts.
//
// Every failed payment becomes one durable Temporal workflow, DunningWorkflow, with ID
// WorkflowID(invoiceID). The billing service talks to a run with signals (SignalRetryResult,
// SignalRecovered, SignalCancel, SignalPause, SignalResume, SignalOptOut) and reads it with
// the QueryStatus query.
package recoup

import (
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
)

// TaskQueue is the Temporal task queue the worker polls for dunning workflows and activities.
const TaskQueue = "recoup-dunning"

// Sends run on task queues of their own so that a provider's account rate limit holds across
// every worker replica (the server enforces a task queue's activities-per-second limit).
const (
	EmailTaskQueue = "recoup-sends-email"
	SMSTaskQueue   = "recoup-sends-sms"
)

// WorkflowType is the registered name of the dunning workflow.
const WorkflowType = "DunningWorkflow"

// WorkflowIDPrefix prefixes every dunning run's workflow ID.
const WorkflowIDPrefix = "dunning-"

// WorkflowID returns the ID of the one dunning run of an invoice. Invoice IDs are opaque
// identifiers from the billing system; they never contain customer contact data.
func WorkflowID(invoiceID string) string { return WorkflowIDPrefix + invoiceID }

// InvoiceIDFromWorkflowID is the inverse of WorkflowID; ok is false for other IDs.
func InvoiceIDFromWorkflowID(id string) (invoiceID string, ok bool) {
	if !strings.HasPrefix(id, WorkflowIDPrefix) || len(id) == len(WorkflowIDPrefix) {
		return "", false
	}
	return id[len(WorkflowIDPrefix):], true
}

// Event types accepted from the billing service (the "type" field of an Event).
const (
	EventPaymentFailed  = "payment.failed"
	EventRetrySucceeded = "payment.retry_succeeded"
	EventRetryFailed    = "payment.retry_failed"
	EventRecovered      = "payment.recovered"
	// EventPaymentSucceeded is any successful payment attempt: payment volume for
	// failure-spike detection, and a settle for an invoice in dunning.
	EventPaymentSucceeded = "payment.succeeded"
	EventCancel           = "dunning.cancel"
	// Support and customer actions.
	EventPause  = "dunning.pause"
	EventResume = "dunning.resume"
	EventOptOut = "dunning.opt_out"
	// EventPaymentMethodUpdated: the customer updated the card or completed the
	// authentication the issuer asked for. retry_requested asks Recoup to advise a retry now.
	EventPaymentMethodUpdated = "payment_method.updated"
)

// EventTypes lists every event type accepted from the billing service; each has a JSON
// Schema, internal/events/schemas/v1/<type>.json.
var EventTypes = []string{EventPaymentFailed, EventRetrySucceeded, EventRetryFailed, EventRecovered,
	EventCancel, EventPause, EventResume, EventOptOut, EventPaymentSucceeded, EventPaymentMethodUpdated}

// Signal names a dunning run accepts. Each carries the payload type named beside it.
const (
	SignalPaymentFailed = "payment-failed" // PaymentFailed: a (possibly duplicate) failure for the run's invoice
	SignalRetryResult   = "retry-result"   // RetryResult: outcome of a retried charge
	SignalRecovered     = "recovered"      // Recovered: paid another way
	SignalCancel        = "cancel"         // Cancel: stop dunning
	SignalPause         = "pause"          // Pause: send nothing until resumed
	SignalResume        = "resume"         // Resume: continue where the run was
	SignalOptOut        = "opt-out"        // OptOut: stop one channel for the rest of the run
	SignalReleaseHold   = "release-hold"   // ReleaseHold: the incident holding the run ended or was released
	SignalReply         = "reply"          // Reply: the customer answered (SMS or email), masked
	// SignalPaymentMethodUpdated carries PaymentMethodUpdated: the customer updated the card
	// or authenticated (payment_method.updated).
	SignalPaymentMethodUpdated = "payment-method-updated"
)

// Reply is the payload of SignalReply: a customer's free-text answer, recorded in the
// inbound-reply log before it is delivered to each of the customer's open runs. Text is
// masked (no email addresses, phone numbers or long digit runs) and bounded; keyword
// replies (STOP, START, HELP) never arrive as a Reply: STOP is an OptOut of SMS.
type Reply struct {
	EventID    string    `json:"event_id"` // "reply:<provider>:<provider message id>"
	Channel    Channel   `json:"channel"`  // the channel it came on (email or sms)
	Text       string    `json:"text"`     // masked, at most MaxReplyText runes
	ReceivedAt time.Time `json:"received_at"`
	Locale     string    `json:"locale,omitempty"` // the customer's profile locale, a hint for the rules
}

// MaxReplyText bounds the masked text a Reply carries (longer replies are cut).
const MaxReplyText = 1000

// Intent is what a customer's reply means, from a closed set (the model's answer is refused
// unless it names one of these).
type Intent string

const (
	IntentPromiseToPay Intent = "promise_to_pay" // with a date
	IntentAlreadyPaid  Intent = "already_paid"
	IntentDispute      Intent = "dispute_or_fraud"
	IntentHardship     Intent = "hardship"
	IntentWrongPerson  Intent = "wrong_person"
	IntentQuestion     Intent = "question"
	IntentOther        Intent = "other"
)

// Intents lists every Intent, in the order prompts and reports use.
var Intents = []Intent{IntentPromiseToPay, IntentAlreadyPaid, IntentDispute, IntentHardship,
	IntentWrongPerson, IntentQuestion, IntentOther}

// Valid reports whether i is one of Intents.
func (i Intent) Valid() bool {
	for _, v := range Intents {
		if v == i {
			return true
		}
	}
	return false
}

// ReplyAction is what the rules decided a classified reply makes the run do.
type ReplyAction string

const (
	ReplyPauseUntil    ReplyAction = "pause_until"     // a promise: pause until the day after it (bounded)
	ReplyVerifyPayment ReplyAction = "verify_payment"  // ask billing to verify (dunning.verify_payment), pause meanwhile
	ReplyStopEscalate  ReplyAction = "stop_escalate"   // send nothing more; support decides (needs_attention)
	ReplyEscalate      ReplyAction = "escalate"        // support answers first (needs_attention)
	ReplyOfferExtend   ReplyAction = "offer_extension" // the next step offers the policy's extension
)

// ReplyRecord is one reply as the run's State shows it: masked text, intent, who decided and
// what the run did.
type ReplyRecord struct {
	EventID    string      `json:"event_id"`
	Channel    Channel     `json:"channel"`
	Text       string      `json:"text"` // masked
	ReceivedAt time.Time   `json:"received_at"`
	Intent     Intent      `json:"intent,omitempty"`
	Confidence float64     `json:"confidence,omitempty"`
	PromisedOn string      `json:"promised_on,omitempty"` // YYYY-MM-DD, for promise_to_pay
	DecidedBy  string      `json:"decided_by,omitempty"`  // DecidedByLLM or DecidedByRules
	Action     ReplyAction `json:"action,omitempty"`
	// PauseUntil ends the pause a promise asked for (pause_until); a promise recorded while
	// the run waited for support applies on resolve while it is still in the future.
	PauseUntil time.Time `json:"pause_until,omitzero"`
	Note       string    `json:"note,omitempty"`
}

// ReleaseHold is the payload of SignalReleaseHold. The spike detector sends it to every run
// an incident held when the incident clears, is released by an operator or is marked a
// false alarm; support can send it to one run (IncidentID empty releases whatever holds it).
type ReleaseHold struct {
	IncidentID string `json:"incident_id,omitempty"`
	Status     string `json:"status,omitempty"` // the incident's status: cleared, released, false_alarm
	By         string `json:"by,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// Hold is why a run holds its first message.
type Hold struct {
	IncidentID string    `json:"incident_id"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"` // the run goes on by itself at this time even if the incident is still open
}

// The failure-spike detector: one long-running workflow per namespace, fed a compact record
// of every payment.failed by the ingress.
const (
	DetectorWorkflowID   = "recoup-spike-detector"
	DetectorWorkflowType = "SpikeDetectorWorkflow"
	// DetectorTaskQueue is the detector's own task queue (its workflow and activities), so
	// that its workflow tasks never wait behind a backlog of dunning runs' on TaskQueue.
	DetectorTaskQueue = "recoup-detector"
	SignalFailures    = "failures"        // []spike.Record (internal)
	QueryIncidents    = "incidents"       // the detector's incidents
	UpdateIncident    = "incident-action" // IncidentAction
)

// IncidentAction is an operator's action on an incident (UpdateIncident).
type IncidentAction struct {
	IncidentID string `json:"incident_id"`
	Action     string `json:"action"` // acknowledge | release | false_alarm
	By         string `json:"by,omitempty"`
	Note       string `json:"note,omitempty"`
}

// QueryStatus is the query that returns a run's whole State.
const QueryStatus = "status"

// Support actions. Each is a Temporal Update with a validator (a clear rejection for a run
// that ended, a channel the customer opted out of, …) and, for use from the Web UI, a signal
// of the same name with the same payload. Pause, resume and cancel take the same payloads as
// the billing signals of those names.
const (
	UpdatePause      = "pause"            // Pause
	UpdateResume     = "resume"           // Resume
	UpdateCancel     = "cancel"           // Cancel
	UpdateActNow     = "act-now"          // ActNowRequest: end the current wait and act now
	UpdateSetChannel = "set-next-channel" // SetChannelRequest: the next message goes by this channel
	UpdateResolve    = "resolve"          // Resolve: support handled what needed attention; the run goes on
	SignalActNow     = UpdateActNow
	SignalSetChannel = UpdateSetChannel
	SignalResolve    = UpdateResolve
	// Approvals: a run in StatusAwaitingApproval holds one step's message until support
	// approves, rejects or edits it (or the policy's approval timeout applies on_timeout).
	UpdateApprove = "approve" // Approval: send the held message as it stands
	UpdateReject  = "reject"  // Approval: send nothing for the held step (Reason required)
	UpdateEdit    = "edit"    // ApprovalEdit: change the held message within the guardrails, then send it
)

// Approval is the payload of UpdateApprove and UpdateReject.
type Approval struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// ApprovalEdit is the payload of UpdateEdit: the fields set replace the held message's;
// the result must pass the same guardrails as the model's answer.
type ApprovalEdit struct {
	By        string     `json:"by"`
	Reason    string     `json:"reason,omitempty"`
	Tone      string     `json:"tone,omitempty"`
	Incentive *Incentive `json:"incentive,omitempty"`
	Channel   Channel    `json:"channel,omitempty"`
	Subject   string     `json:"subject,omitempty"`
	Message   string     `json:"message,omitempty"`
}

// ApprovalRequest is set on a Decision the approval policy (policy.yaml approval) holds for
// a human: which rules asked, how long it waits and what happens then, the message to send
// on timeout, and the bounds an edit must stay within.
type ApprovalRequest struct {
	Rules     []string      `json:"rules"`      // e.g. "amount_due_above USD 1000.00", "first_sms"
	Timeout   time.Duration `json:"timeout"`    // how long the message waits for approval
	OnTimeout string        `json:"on_timeout"` // ApprovalOnTimeoutRules or ApprovalOnTimeoutSkip
	// Fallback is the rules' message for the step without any incentive, sent on timeout
	// with ApprovalOnTimeoutRules.
	Fallback *Decision  `json:"fallback,omitempty"`
	Limits   EditLimits `json:"limits"`
}

// What a held message does when nobody acted within the approval timeout.
const (
	ApprovalOnTimeoutRules = "send_rules_without_incentive"
	ApprovalOnTimeoutSkip  = "skip"
)

// EditLimits are the bounds an edit of a held message must stay within: the policy's tones
// and lengths, the channels allowed for this customer at this step, and the plan's
// incentive caps less what its yearly budget has already used.
type EditLimits struct {
	Plan               string    `json:"plan"`
	Tones              []string  `json:"tones"`
	Channels           []Channel `json:"channels"`
	MaxDiscountPercent int       `json:"max_discount_percent"`
	MaxExtensionDays   int       `json:"max_extension_days"`
	SMSMaxChars        int       `json:"sms_max_chars"`
	EmailMaxChars      int       `json:"email_max_chars"`
	SubjectMaxChars    int       `json:"subject_max_chars"`
}

// PendingApproval is the message a run holds for approval (State.Approval).
type PendingApproval struct {
	Step      int       `json:"step"`
	Rules     []string  `json:"rules"`
	Held      Decision  `json:"held"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"` // on_timeout applies at this time
	OnTimeout string    `json:"on_timeout"`
}

// ApprovalRecord is how one held message was decided: approved, rejected, edited or
// timed_out (with what on_timeout did), by whom and why, and what was sent (Sent: the
// decision after an edit or the rules' fallback; nil when nothing was sent).
type ApprovalRecord struct {
	Step    int       `json:"step"`
	Rules   []string  `json:"rules"`
	Outcome string    `json:"outcome"` // approved | rejected | edited | timed_out | ended
	By      string    `json:"by,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Via     string    `json:"via,omitempty"` // update | signal
	Since   time.Time `json:"since"`
	At      time.Time `json:"at"`
	Sent    *Decision `json:"sent,omitempty"`
}

// Resolve is the payload of UpdateResolve: support answered the customer's reply that put
// the run in StatusNeedsAttention (a dispute, a question, a reply the rules could not
// classify with confidence). The run goes on where it was (later steps move back by the time
// it waited); to stop it instead, support cancels it.
type Resolve struct {
	By   string `json:"by,omitempty"`
	Note string `json:"note"`
}

// ActNowRequest ends the current wait (next step or allowed send time) so the run acts now.
type ActNowRequest struct {
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// SetChannelRequest makes the next message go by Channel (if the customer can be reached on it).
type SetChannelRequest struct {
	By      string  `json:"by,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Channel Channel `json:"channel"`
}

// ActionResult is what a support update returns.
type ActionResult struct {
	Status  Status `json:"status"`
	Message string `json:"message"`
}

// ActionRecord is one support action applied to a run.
type ActionRecord struct {
	Action string    `json:"action"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	Via    string    `json:"via"` // update | signal
}

// Search attributes kept current on every run (registered on the Temporal server).
const (
	SearchAttrCustomerID    = "CustomerId"    // Keyword
	SearchAttrInvoiceID     = "InvoiceId"     // Keyword
	SearchAttrDunningStatus = "DunningStatus" // Keyword: a Status
	SearchAttrDunningStep   = "DunningStep"   // Int: 1-based step number, 0 before the first
	SearchAttrLastChannel   = "LastChannel"   // Keyword: email|sms
	SearchAttrPromptVersion = "PromptVersion" // Keyword: prompt set version of the last decision
	SearchAttrDecidedBy     = "DecidedBy"     // Keyword: llm|rules, of the last decision
	SearchAttrAmountDue     = "AmountDue"     // Int: amount due in minor units
	SearchAttrCurrency      = "Currency"      // Keyword: ISO 4217
)

// SearchAttributes lists every custom search attribute with its type, for registration
// (`temporal operator search-attribute create --name N --type T`).
var SearchAttributes = []struct{ Name, Type string }{
	{SearchAttrCustomerID, "Keyword"}, {SearchAttrInvoiceID, "Keyword"}, {SearchAttrDunningStatus, "Keyword"},
	{SearchAttrDunningStep, "Int"}, {SearchAttrLastChannel, "Keyword"}, {SearchAttrPromptVersion, "Keyword"},
	{SearchAttrDecidedBy, "Keyword"}, {SearchAttrAmountDue, "Int"}, {SearchAttrCurrency, "Keyword"},
}

// Typed search-attribute keys, declared once: for starting runs with their attributes,
// upserting them, and building visibility queries.
var (
	CustomerIDKey    = temporal.NewSearchAttributeKeyKeyword(SearchAttrCustomerID)
	InvoiceIDKey     = temporal.NewSearchAttributeKeyKeyword(SearchAttrInvoiceID)
	DunningStatusKey = temporal.NewSearchAttributeKeyKeyword(SearchAttrDunningStatus)
	DunningStepKey   = temporal.NewSearchAttributeKeyInt64(SearchAttrDunningStep)
	LastChannelKey   = temporal.NewSearchAttributeKeyKeyword(SearchAttrLastChannel)
	PromptVersionKey = temporal.NewSearchAttributeKeyKeyword(SearchAttrPromptVersion)
	DecidedByKey     = temporal.NewSearchAttributeKeyKeyword(SearchAttrDecidedBy)
	AmountDueKey     = temporal.NewSearchAttributeKeyInt64(SearchAttrAmountDue)
	CurrencyKey      = temporal.NewSearchAttributeKeyKeyword(SearchAttrCurrency)
)

// Status of a dunning run.
type Status string

const (
	StatusActive Status = "active" // working on a step or waiting for the next one
	StatusPaused Status = "paused" // paused by support; sends nothing until resumed
	StatusHeld   Status = "held"   // holding its first message during a failure-spike incident
	// StatusNeedsAttention: a customer's reply needs support (a dispute, a wrong person, a
	// question or a reply not classified with confidence); the run sends nothing until
	// support resolves, resumes or cancels it. Find them with DunningStatus = "needs_attention".
	StatusNeedsAttention Status = "needs_attention"
	// StatusAwaitingApproval: the approval policy holds the step's message for a human
	// (approve, reject, edit); find them with DunningStatus = "awaiting_approval".
	StatusAwaitingApproval Status = "awaiting_approval"
	StatusRecovered        Status = "recovered" // the invoice was paid (ended)
	StatusExhausted        Status = "exhausted" // every step ran without recovery; billing was told (ended)
	StatusCanceled         Status = "canceled"  // canceled by billing or support (ended)
	StatusFailed           Status = "failed"    // could not run at all, e.g. unknown customer (ended)
)

// Ended reports whether s is a final status.
func (s Status) Ended() bool {
	switch s {
	case StatusRecovered, StatusExhausted, StatusCanceled, StatusFailed:
		return true
	}
	return false
}

// Channel a message is sent on.
type Channel string

const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
	ChannelNone  Channel = "none" // decided not to send at this step
)

// Valid reports whether c is email or sms.
func (c Channel) Valid() bool { return c == ChannelEmail || c == ChannelSMS }

// CustomerSnapshot is the customer's profile as the billing system knows it when the event
// is emitted. It upserts Recoup's copy; the newest OccurredAt wins.
type CustomerSnapshot struct {
	Name         string `json:"name,omitempty"`
	Email        string `json:"email,omitempty"`
	Phone        string `json:"phone,omitempty"`     // E.164, e.g. +14155550100
	Locale       string `json:"locale,omitempty"`    // BCP 47, e.g. en-US
	TimeZone     string `json:"time_zone,omitempty"` // IANA, e.g. America/New_York
	Plan         string `json:"plan,omitempty"`
	EmailConsent *bool  `json:"email_consent,omitempty"`
	SMSConsent   *bool  `json:"sms_consent,omitempty"`
}

// PaymentFailed is the payload of a payment.failed event and of SignalPaymentFailed.
type PaymentFailed struct {
	EventID     string            `json:"event_id"`
	InvoiceID   string            `json:"invoice_id"`
	CustomerID  string            `json:"customer_id"`
	AttemptID   string            `json:"attempt_id,omitempty"`
	AmountMinor int64             `json:"amount_minor"` // in the currency's minor unit (cents)
	Currency    string            `json:"currency"`     // ISO 4217, e.g. USD
	FailureCode string            `json:"failure_code,omitempty"`
	AdviceCode  string            `json:"advice_code,omitempty"` // network advice code, e.g. Mastercard MAC "03"
	OccurredAt  time.Time         `json:"occurred_at"`
	Customer    *CustomerSnapshot `json:"customer,omitempty"`
	// Payment context, for failure-spike detection (no PII): the gateway that ran the charge,
	// the card's BIN (first 6 digits only) and the issuer's country (ISO 3166-1 alpha-2).
	Gateway       string `json:"gateway,omitempty"`
	CardBIN       string `json:"card_bin,omitempty"`
	IssuerCountry string `json:"issuer_country,omitempty"`
}

// RetryResult is the payload of SignalRetryResult: billing retried the charge.
type RetryResult struct {
	EventID     string    `json:"event_id"`
	AttemptID   string    `json:"attempt_id"`
	Succeeded   bool      `json:"succeeded"`
	FailureCode string    `json:"failure_code,omitempty"`
	AdviceCode  string    `json:"advice_code,omitempty"` // network advice code, e.g. Mastercard MAC "03"
	OccurredAt  time.Time `json:"occurred_at"`
}

// Recovered is the payload of SignalRecovered: the invoice was paid another way.
type Recovered struct {
	EventID    string    `json:"event_id"`
	OccurredAt time.Time `json:"occurred_at"`
}

// PaymentMethodUpdated is the payload of SignalPaymentMethodUpdated: the customer updated
// the card or completed authentication. The run's next retry advice counts it (no retry of
// the old card unless RetryRequested); with RetryRequested the run advises at once.
type PaymentMethodUpdated struct {
	EventID        string    `json:"event_id"`
	RetryRequested bool      `json:"retry_requested,omitempty"`
	OccurredAt     time.Time `json:"occurred_at"`
}

// Cancel is the payload of SignalCancel.
type Cancel struct {
	EventID    string    `json:"event_id,omitempty"`
	By         string    `json:"by,omitempty"` // who asked, when support does
	Reason     string    `json:"reason"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
}

// Pause is the payload of SignalPause.
type Pause struct {
	EventID    string    `json:"event_id,omitempty"`
	By         string    `json:"by,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
}

// Resume is the payload of SignalResume.
type Resume struct {
	EventID    string    `json:"event_id,omitempty"`
	By         string    `json:"by,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
}

// OptOut is the payload of SignalOptOut: the customer withdrew consent for one channel.
type OptOut struct {
	EventID    string    `json:"event_id"`
	Channel    Channel   `json:"channel"`
	OccurredAt time.Time `json:"occurred_at"`
}

// DunningInput starts a run. It is built from the first PaymentFailed of the invoice.
type DunningInput struct {
	Failure PaymentFailed `json:"failure"`
	// Episode numbers the dunning runs of one invoice: 0 or 1 for the first, n for the n-th
	// (a new failure after an earlier run of the invoice closed). See RunKey.
	Episode int `json:"episode,omitempty"`
	// Continued is set only by the run itself when it continues as new (a long run's history
	// is kept short): the state it carries over. Billing never sets it.
	Continued *Continuation `json:"continued,omitempty"`
}

// Continuation is the state a run carries across continue-as-new.
type Continuation struct {
	State       State           `json:"state"`
	Seen        []string        `json:"seen,omitempty"` // event ids already received, newest last (bounded)
	Excluded    []Channel       `json:"excluded,omitempty"`
	FailureCode string          `json:"failure_code,omitempty"`
	PausedAt    time.Time       `json:"paused_at,omitzero"`
	PausedFor   time.Duration   `json:"paused_for,omitempty"`
	Schedule    []time.Duration `json:"schedule"`
	FinalWait   time.Duration   `json:"final_wait"`
	NextStep    int             `json:"next_step"` // 0-based index of the step not yet taken
	ExhaustAt   time.Time       `json:"exhaust_at,omitzero"`
	// ExhaustPausedFor is PausedFor when ExhaustAt was set (later pauses move it back).
	ExhaustPausedFor time.Duration `json:"exhaust_paused_for,omitempty"`
	// PendingReplies were received but not yet classified.
	PendingReplies []Reply `json:"pending_replies,omitempty"`
}

// RunKey identifies one dunning run of an invoice in PostgreSQL and in idempotency keys: the
// workflow ID for the first episode, "<workflow id>#<n>" for the n-th, so that a second run
// of the same invoice never finds the first run's sends, decisions or offers.
func RunKey(workflowID string, episode int) string {
	if episode <= 1 {
		return workflowID
	}
	return workflowID + "#" + strconv.Itoa(episode)
}

// DunningResult is what a finished run returns.
type DunningResult struct {
	Status Status `json:"status"`
	Steps  int    `json:"steps"` // steps whose decision was taken
	Reason string `json:"reason,omitempty"`
}

// Incentive offered to the customer. Billing must honour it, so it is announced before the
// message that offers it is sent.
type Incentive struct {
	Kind  string `json:"kind"` // IncentiveNone, IncentiveDiscountPercent or IncentiveExtensionDays
	Value int    `json:"value,omitempty"`
}

// Incentive kinds.
const (
	IncentiveNone            = "none"
	IncentiveDiscountPercent = "discount_percent"
	IncentiveExtensionDays   = "extension_days"
)

// DeclineClass is what a payment failure code means for dunning (prompts/declines.yaml maps
// the codes of Stripe, Adyen, Braintree and ISO 8583 to these): it decides the message plan
// and the retry advice.
type DeclineClass string

// Decline classes.
const (
	DeclineUpdatePaymentMethod    DeclineClass = "update_payment_method"   // expired card, incorrect number, closed account
	DeclineDoNotRetry             DeclineClass = "do_not_retry"            // lost or stolen card, pickup, fraud, revoked authorisation
	DeclineInsufficientFunds      DeclineClass = "insufficient_funds"      // retry after the next likely payday
	DeclineAuthenticationRequired DeclineClass = "authentication_required" // 3-D Secure / SCA: the customer must authenticate
	DeclineIssuerUnavailable      DeclineClass = "issuer_unavailable"      // the issuer or network is down: try again soon
	DeclineGenericSoft            DeclineClass = "generic_soft"            // do_not_honor, generic_decline
	DeclineUnknown                DeclineClass = "unknown"                 // a code the table does not know
)

// DeclineClasses lists every decline class.
var DeclineClasses = []DeclineClass{DeclineUpdatePaymentMethod, DeclineDoNotRetry, DeclineInsufficientFunds,
	DeclineAuthenticationRequired, DeclineIssuerUnavailable, DeclineGenericSoft, DeclineUnknown}

// WebhookRetryAdvice is the outbound webhook (Standard Webhooks, to BILLING_WEBHOOK_URL) by
// which Recoup advises billing when, or whether, to retry a failed charge: one per failure
// (webhook-id "<run key>/retry-advice/<failure event id>"). See docs/events/README.md.
const WebhookRetryAdvice = "dunning.retry_advice"

// RetryAttempt is one charge attempt on the invoice's card the run heard of: the failure
// that started it, a later payment.failed, or billing's retry results. Each counts against
// the card networks' retry budgets.
type RetryAttempt struct {
	EventID string    `json:"event_id"`
	At      time.Time `json:"at"`
	Code    string    `json:"code,omitempty"`
	// AdviceCode is the network advice code that came with the failure (Mastercard MAC "03").
	AdviceCode string `json:"advice_code,omitempty"`
	Succeeded  bool   `json:"succeeded,omitempty"`
}

// RetryAdvice is what Recoup advised billing after one failure.
type RetryAdvice struct {
	FailureEventID string       `json:"failure_event_id"`
	Class          DeclineClass `json:"class"`
	DoNotRetry     bool         `json:"do_not_retry"`
	RetryAt        time.Time    `json:"retry_at,omitzero"`
	Reason         string       `json:"reason"`
	// Remaining is how many attempts the network budgets (and Recoup's cap) still allow at
	// RetryAt, the advised one included.
	Remaining int       `json:"remaining"`
	AdvisedAt time.Time `json:"advised_at"`
	Delivery  string    `json:"delivery"` // sent | logged (no webhook configured) | rejected
	// Executed is what the Stripe executor did at RetryAt (empty when it is not enabled):
	// "scheduled" (waiting for RetryAt, or for a paused run to resume; carried across
	// continue-as-new), "paid", "declined: <code>", "skipped: …" or "failed: …".
	Executed string `json:"executed,omitempty"`
}

// RetryState is the run's retry bookkeeping (State.Retry): the attempts so far (the newest
// MaxRetryAttempts), the failures not yet advised on, and the newest advice.
type RetryState struct {
	Attempts []RetryAttempt `json:"attempts,omitempty"`
	Pending  []RetryAttempt `json:"pending,omitempty"`
	Advice   *RetryAdvice   `json:"advice,omitempty"`
	Advised  int            `json:"advised,omitempty"` // advices given so far
	// CardUpdate is the newest payment_method.updated not yet counted by an advice (the
	// next advice counts it and clears it).
	CardUpdate *PaymentMethodUpdated `json:"card_update,omitempty"`
}

// MaxRetryAttempts bounds RetryState.Attempts (the networks' windows are 30 days).
const MaxRetryAttempts = 100

// Decision is what DecideStrategy chose for one step, after guardrails.
type Decision struct {
	Step      int       `json:"step"`
	Channel   Channel   `json:"channel"`
	Tone      string    `json:"tone"`
	Incentive Incentive `json:"incentive"`
	Subject   string    `json:"subject,omitempty"`
	Message   string    `json:"message"`
	Rationale string    `json:"rationale"`
	DecidedBy string    `json:"decided_by"` // DecidedByLLM or DecidedByRules
	// DeclineClass is the class prompts/declines.yaml gave the failure code this step was
	// decided for (empty: runs decided before it existed).
	DeclineClass DeclineClass `json:"decline_class,omitempty"`
	// DeciderNote says in a line why DecidedBy decided: "no model configured …", "model X
	// answered within policy", "model X failed: …; the rules decided" (empty: runs decided
	// before this field existed).
	DeciderNote   string `json:"decider_note,omitempty"`
	Model         string `json:"model,omitempty"`
	PromptVersion string `json:"prompt_version"`
	PolicyVersion string `json:"policy_version,omitempty"`
	Variant       string `json:"variant,omitempty"` // prompt A/B variant
	// Holdout is the run's holdout arm ("control": the control treatment of policy.yaml's
	// holdout section, no incentive and no model; "treatment"; empty: holdout off).
	Holdout    string    `json:"holdout,omitempty"`
	Violations []string  `json:"violations,omitempty"` // why the model's answer was not used, if it was not
	SendAt     time.Time `json:"send_at"`              // earliest allowed send time (quiet hours)
	// SendUntil is the end of the allowed-hours window that begins at SendAt; a message not
	// handed to the provider by then waits for the next window (zero: no limit recorded,
	// runs decided before this field existed).
	SendUntil time.Time `json:"send_until,omitzero"`
	// Approval is set when the approval policy holds this message for a human.
	Approval *ApprovalRequest `json:"approval,omitempty"`
}

// Who decided.
const (
	DecidedByLLM     = "llm"
	DecidedByRules   = "rules"
	DecidedBySupport = "support" // an edit of a held message (UpdateEdit)
)

// MessageRecord is one message of a run as the status query reports it.
type MessageRecord struct {
	Step              int       `json:"step"`
	Channel           Channel   `json:"channel"`
	IdempotencyKey    string    `json:"idempotency_key"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	Delivery          string    `json:"delivery"` // sent | logged | reconcile | failed
	Error             string    `json:"error,omitempty"`
	At                time.Time `json:"at"`
}

// SignalRecord is one signal the run received, applied or not.
type SignalRecord struct {
	Name       string    `json:"name"`
	EventID    string    `json:"event_id,omitempty"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
	ReceivedAt time.Time `json:"received_at"`
	Applied    bool      `json:"applied"`
	Note       string    `json:"note,omitempty"` // e.g. "duplicate", "stale", "run already ended"
}

// State is the whole state of a run, returned by QueryStatus.
type State struct {
	InvoiceID    string          `json:"invoice_id"`
	CustomerID   string          `json:"customer_id"`
	AmountMinor  int64           `json:"amount_minor"`
	Currency     string          `json:"currency"`
	Status       Status          `json:"status"`
	Reason       string          `json:"reason,omitempty"`
	Step         int             `json:"step"`        // 1-based number of the current step; 0 before the first
	TotalSteps   int             `json:"total_steps"` // steps in the schedule
	NextAction   string          `json:"next_action,omitempty"`
	NextActionAt time.Time       `json:"next_action_at,omitzero"`
	StartedAt    time.Time       `json:"started_at"`
	OptedOut     []Channel       `json:"opted_out,omitempty"`
	Failures     int             `json:"failures"` // payment failures seen (first one included)
	Decisions    []Decision      `json:"decisions,omitempty"`
	Messages     []MessageRecord `json:"messages,omitempty"`
	Signals      []SignalRecord  `json:"signals,omitempty"`
	// SignalsOmitted counts the oldest signal records dropped to keep the state bounded.
	SignalsOmitted int            `json:"signals_omitted,omitempty"`
	Offers         []Incentive    `json:"offers,omitempty"`
	Actions        []ActionRecord `json:"actions,omitempty"`        // support actions, with who and why
	NextChannel    Channel        `json:"next_channel,omitempty"`   // set by support for the next message
	Hold           *Hold          `json:"hold,omitempty"`           // set while the run holds for a failure-spike incident
	LastApplied    time.Time      `json:"last_applied_at,omitzero"` // occurred_at of the newest applied billing event
	// Replies are the customer's replies this run heard (masked), with their intent and what
	// the run did (the newest MaxReplyRecords).
	Replies []ReplyRecord `json:"replies,omitempty"`
	// PausedUntil is when a pause the customer's reply caused ends by itself (a promise to
	// pay, a payment billing verifies); zero for support's pauses.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// Hardship: the customer said they cannot pay now; the next decision offers the policy's
	// extension.
	Hardship bool `json:"hardship,omitempty"`
	// RetryWait follows a step that sent nothing because the failure's decline class waits
	// for a retry (first_message: after_failed_retry): "waiting" until a retry fails, then
	// "failed" until the wait for the next step ends at once (the run acts on it now).
	RetryWait string `json:"retry_wait,omitempty"`
	// LastResumed is the occurred_at (clamped) of the newest resume signal received, applied
	// or refused: a pause signal dated before it is stale (it was superseded by the resume).
	LastResumed time.Time `json:"last_resumed_at,omitzero"`
	// Approval is the message the run holds for approval (StatusAwaitingApproval, or paused
	// while holding it); Approvals how every held message was decided.
	Approval  *PendingApproval `json:"approval,omitempty"`
	Approvals []ApprovalRecord `json:"approvals,omitempty"`
	// Retry is the retry advice given to billing and the attempts it counts (nil: runs
	// recorded before retry advice).
	Retry *RetryState `json:"retry,omitempty"`
}

// MaxReplyRecords bounds State.Replies.
const MaxReplyRecords = 50

// Application error types (temporal.ApplicationError.Type()) that cross the workflow
// boundary: what activities return when retrying cannot help, and what a refused support
// action returns to its caller. The strings are recorded in histories: never change one.
const (
	// ErrTypeRejected: a support action (Update) refused by its validator.
	ErrTypeRejected         = "ActionRejected"
	ErrTypeUnknownCustomer  = "UnknownCustomer"
	ErrTypeNotReachable     = "NotReachable"
	ErrTypeProviderRejected = "ProviderRejected"
	ErrTypeWebhookRejected  = "WebhookRejected"
	ErrTypeInvalidInput     = "InvalidInput"
	// ErrTypeOutsideAllowedHours: the send was attempted outside the allowed-hours window
	// (SendInput.NotBefore/NotAfter) by the worker's clock; nothing was sent and the workflow
	// waits for the next window.
	ErrTypeOutsideAllowedHours = "OutsideAllowedHours"
	// ErrTypeSettled: the invoice was settled (an event recorded since the run started,
	// whether or not it has reached the run yet): nothing was sent, or the run may not end
	// exhausted. The error's details are a SettledBy.
	ErrTypeSettled = "InvoiceSettled"
)

// SettledBy names the settling event of an ErrTypeSettled error: the workflow applies it as
// if its signal had arrived (the signal, when it comes, is then a duplicate).
type SettledBy struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"` // payment.recovered, payment.retry_succeeded or dunning.cancel
}

// Provider delivery statuses: what SendGrid's Event Webhook and Twilio's status callbacks
// say of a message (sends.provider_status, the kind of a provider event). A later event of
// a lower rank never overwrites a higher one (ProviderStatusRank), so events arriving out of
// order cannot move a message back from delivered to accepted.
const (
	DeliveryAccepted     = "accepted"     // SendGrid processed; Twilio accepted, queued, sending, sent
	DeliveryDeferred     = "deferred"     // SendGrid deferred: the receiving server asked to try later
	DeliveryDelivered    = "delivered"    // the receiving server or the carrier took it
	DeliverySoftBounced  = "soft_bounced" // a temporary bounce (mailbox full, …): the address stays usable
	DeliveryBounced      = "bounced"      // a hard bounce: the address does not exist
	DeliveryDropped      = "dropped"      // SendGrid dropped it (invalid, bounced or suppressed address)
	DeliveryUndelivered  = "undelivered"  // Twilio: the carrier could not deliver it
	DeliveryFailed       = "failed"       // Twilio: it could not be sent (invalid number, unsubscribed, …)
	DeliverySpamReport   = "spam_report"  // the recipient marked it as spam: an opt-out
	DeliveryUnsubscribed = "unsubscribed" // the recipient unsubscribed (all or the group): an opt-out
	DeliveryOpened       = "opened"       // engagement: opened (SendGrid open, Twilio read)
	DeliveryClicked      = "clicked"      // engagement: a link was clicked
)

// ProviderStatusRank orders the delivery statuses of one message: accepted < deferred <
// delivered, soft bounce, engagement < hard failures < opt-outs. Unknown statuses rank 0.
func ProviderStatusRank(status string) int {
	switch status {
	case DeliveryAccepted:
		return 1
	case DeliveryDeferred:
		return 2
	case DeliveryDelivered, DeliverySoftBounced, DeliveryOpened, DeliveryClicked:
		return 3
	case DeliveryBounced, DeliveryDropped, DeliveryUndelivered, DeliveryFailed:
		return 4
	case DeliverySpamReport, DeliveryUnsubscribed:
		return 5
	}
	return 0
}

// Message delivery states a run records beyond the send statuses (MessageRecord.Delivery).
const (
	// DeliveryReconcile: the provider's answer did not say whether it accepted the message
	// (a timeout, a lost connection, an ambiguous 500/502/504); its events settle it.
	DeliveryReconcile = "reconcile"
	// DeliverySuperseded: a send whose outcome was unknown and which no provider event named
	// within the reconcile window: the provider never accepted it, and the step was sent
	// again, once, under ResendKey.
	DeliverySuperseded = "superseded"
)

// ResendKey is the idempotency key of the one resend of a step's message whose first
// attempt the provider provably never accepted (no event named it within the reconcile
// window). A resend is never sent again.
func ResendKey(key string) string { return key + "/resend" }
