// Package observability holds Recoup's telemetry beyond the ingress metrics of package
// metrics: business metrics recorded by the activities, the Temporal SDK's metrics exported
// through OpenTelemetry onto the same Prometheus registry, OTLP tracing (off unless an
// OTEL_EXPORTER_OTLP_* endpoint is set), and a logger that masks contact data.
package observability

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recoup-dunning/recoup/internal/provider"
)

// Fallback reasons of recoup_llm_fallbacks_total: why the rules policy decided a step
// although a model is configured.
const (
	FallbackError       = "error"        // the model call (or its prompt) failed
	FallbackRefusal     = "refusal"      // the model refused
	FallbackInvalidJSON = "invalid_json" // the answer did not decode against the schema
	FallbackViolation   = "violation"    // the answer broke the policy
	FallbackNoChannel   = "no_channel"   // no channel was allowed, so the model was not asked
)

// Business holds the dunning business metrics. A nil *Business records nothing, so the
// activities work without metrics (tests, tools).
type Business struct {
	runsStarted      prometheus.Counter
	runsEnded        *prometheus.CounterVec
	messages         *prometheus.CounterVec
	incentiveOffered *prometheus.CounterVec
	incentiveValue   *prometheus.CounterVec
	llmRequest       prometheus.Histogram
	llmErrors        *prometheus.CounterVec
	llmFallbacks     *prometheus.CounterVec
	llmTokens        *prometheus.CounterVec
	providerErrors   *prometheus.CounterVec
	sendsReconciled  *prometheus.CounterVec
	incidents        *prometheus.CounterVec
	runsHeld         prometheus.Counter
	declineUnknown   *prometheus.CounterVec
	detectionLatency prometheus.Histogram
}

// NewBusiness registers the business metrics on r (metrics.NewRegistry() in the binaries).
// It panics if they are already registered there, like prometheus.MustRegister.
func NewBusiness(r prometheus.Registerer) *Business {
	b := &Business{
		runsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recoup_runs_started_total",
			Help: "Dunning runs started (recorded by PlanRun).",
		}),
		runsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_runs_ended_total",
			Help: "Dunning runs ended, by outcome (recovered, exhausted, canceled, failed).",
		}, []string{"outcome"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_messages_total",
			Help: "Dunning messages handed over, by channel, tone, who decided (llm, rules) and delivery (sent, logged, reconcile).",
		}, []string{"channel", "tone", "decided_by", "delivery"}),
		incentiveOffered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_incentive_offered_total",
			Help: "Incentives offered to customers, by kind (discount_percent, extension_days).",
		}, []string{"kind"}),
		incentiveValue: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_incentive_value_offered",
			Help: "Sum of the values of the incentives offered, by kind: percent for discount_percent, days for extension_days.",
		}, []string{"kind"}),
		llmRequest: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "recoup_llm_request_seconds",
			Help:    "Duration of model calls, successful or not.",
			Buckets: []float64{.1, .25, .5, 1, 2, 3, 5, 8, 13, 20, 30, 60},
		}),
		llmErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_llm_errors_total",
			Help: "Failed model calls, by reason (timeout, rate_limited, http_4xx, http_5xx, connect, other).",
		}, []string{"reason"}),
		llmFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_llm_fallbacks_total",
			Help: "Steps decided by the rules policy although a model is configured, by reason (error, refusal, invalid_json, violation, no_channel).",
		}, []string{"reason"}),
		llmTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_llm_tokens_total",
			Help: "Tokens reported by the model endpoint, by kind (prompt, completion).",
		}, []string{"kind"}),
		providerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_provider_errors_total",
			Help: "Failed provider calls (sendgrid, twilio, webhook, openai), by provider and code: the provider's error code, else the HTTP status, else connect, outcome_unknown, invalid or other.",
		}, []string{"provider", "code"}),
		sendsReconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_sends_reconciled_total",
			Help: "Sends whose provider outcome is unknown and that were marked for reconciliation instead of being sent again, by channel.",
		}, []string{"channel"}),
		incidents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_incidents_total",
			Help: "Failure-spike incident events, by kind (opened, escalated, cleared, acknowledge, release, false_alarm) and severity.",
		}, []string{"kind", "severity"}),
		runsHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recoup_runs_held_total",
			Help: "Dunning runs that held their first message because a failure-spike incident matched their failure.",
		}),
		declineUnknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recoup_decline_codes_unknown_total",
			Help: "Steps decided for a failure code prompts/declines.yaml does not know (classed unknown), by namespace (the table's, or other); the worker logs each such code once.",
		}, []string{"namespace"}),
		detectionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "recoup_incident_detection_latency_seconds",
			Help:    "Stream time from the start of a spike's first anomalous minute to the incident being flagged.",
			Buckets: []float64{15, 30, 45, 60, 90, 120, 180, 300, 600, 900},
		}),
	}
	b.llmTokens.WithLabelValues("prompt")
	b.llmTokens.WithLabelValues("completion")
	r.MustRegister(b.runsStarted, b.runsEnded, b.messages, b.incentiveOffered, b.incentiveValue,
		b.llmRequest, b.llmErrors, b.llmFallbacks, b.llmTokens, b.providerErrors, b.sendsReconciled,
		b.incidents, b.runsHeld, b.detectionLatency, b.declineUnknown)
	return b
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// RunStarted counts a started run.
func (b *Business) RunStarted() {
	if b == nil {
		return
	}
	b.runsStarted.Inc()
}

// RunEnded counts an ended run by outcome (a recoup.Status).
func (b *Business) RunEnded(outcome string) {
	if b == nil {
		return
	}
	b.runsEnded.WithLabelValues(orUnknown(outcome)).Inc()
}

// Message counts a message by channel, tone, decided_by (llm, rules) and delivery (sent,
// logged, reconcile).
func (b *Business) Message(channel, tone, decidedBy, delivery string) {
	if b == nil {
		return
	}
	b.messages.WithLabelValues(orUnknown(channel), orUnknown(tone), orUnknown(decidedBy), orUnknown(delivery)).Inc()
}

// IncentiveOffered counts an offer of kind and adds value (percent or days) to its sum.
func (b *Business) IncentiveOffered(kind string, value int) {
	if b == nil {
		return
	}
	kind = orUnknown(kind)
	b.incentiveOffered.WithLabelValues(kind).Inc()
	if value > 0 {
		b.incentiveValue.WithLabelValues(kind).Add(float64(value))
	}
}

// LLMRequest records one model call: its duration, the tokens it used (zero when it
// failed), and, when err is not nil, an error by reason (see LLMErrorReason) and a provider
// error for "openai" when the endpoint answered with an HTTP error.
func (b *Business) LLMRequest(d time.Duration, promptTokens, completionTokens int, err error) {
	if b == nil {
		return
	}
	b.llmRequest.Observe(d.Seconds())
	if promptTokens > 0 {
		b.llmTokens.WithLabelValues("prompt").Add(float64(promptTokens))
	}
	if completionTokens > 0 {
		b.llmTokens.WithLabelValues("completion").Add(float64(completionTokens))
	}
	if err != nil {
		b.llmErrors.WithLabelValues(LLMErrorReason(err)).Inc()
		b.ProviderError("openai", err)
	}
}

// LLMFallback counts a step the rules policy decided although a model is configured; reason
// is one of the Fallback* constants.
func (b *Business) LLMFallback(reason string) {
	if b == nil {
		return
	}
	b.llmFallbacks.WithLabelValues(orUnknown(reason)).Inc()
}

// DeclineCodeUnknown counts a step decided for a failure code the decline table does not
// know; namespace is one of the table's namespaces or "other" (never the code itself).
func (b *Business) DeclineCodeUnknown(namespace string) {
	if b == nil {
		return
	}
	b.declineUnknown.WithLabelValues(orUnknown(namespace)).Inc()
}

// ProviderError counts a failed provider call. The provider is the *provider.Error's when
// err is one, else name; the code is ProviderErrorCode(err).
func (b *Business) ProviderError(name string, err error) {
	if b == nil || err == nil {
		return
	}
	var pe *provider.Error
	if errors.As(err, &pe) && pe.Provider != "" {
		name = pe.Provider
	}
	b.providerErrors.WithLabelValues(orUnknown(name), ProviderErrorCode(err)).Inc()
}

// SendReconciled counts a send marked for reconciliation.
func (b *Business) SendReconciled(channel string) {
	if b == nil {
		return
	}
	b.sendsReconciled.WithLabelValues(orUnknown(channel)).Inc()
}

// ProviderErrorCode is the code label of a provider error: the provider's own error code
// (e.g. Twilio 21211) when it gave one, else the HTTP status; without an answer "connect"
// (the request never left), "outcome_unknown" (provider.ErrOutcomeUnknown), "invalid" (a
// message rejected before sending) or "other".
func ProviderErrorCode(err error) string {
	var pe *provider.Error
	switch {
	case errors.As(err, &pe):
		switch {
		case pe.Code != "":
			return pe.Code
		case pe.StatusCode != 0:
			return strconv.Itoa(pe.StatusCode)
		case pe.Permanent:
			return "invalid"
		default:
			return "connect"
		}
	case errors.Is(err, provider.ErrOutcomeUnknown):
		return "outcome_unknown"
	}
	return "other"
}

// LLMErrorReason buckets a failed model call: "timeout" (the outcome is unknown: timeout or
// lost connection), "rate_limited" (429), "http_4xx", "http_5xx", "connect" (never
// reached the endpoint) or "other".
func LLMErrorReason(err error) string {
	var pe *provider.Error
	switch {
	case errors.As(err, &pe):
		switch {
		case pe.StatusCode == 429:
			return "rate_limited"
		case pe.StatusCode >= 500:
			return "http_5xx"
		case pe.StatusCode >= 400:
			return "http_4xx"
		case pe.StatusCode == 0 && !pe.Permanent:
			return "connect"
		}
	case errors.Is(err, provider.ErrOutcomeUnknown):
		return "timeout"
	}
	return "other"
}

// Incident counts a failure-spike incident event; an opening also records its detection
// latency.
func (b *Business) Incident(kind, severity string, latency time.Duration) {
	if b == nil {
		return
	}
	b.incidents.WithLabelValues(kind, orUnknown(severity)).Inc()
	if kind == "opened" {
		b.detectionLatency.Observe(latency.Seconds())
	}
}

// RunHeld counts a run holding its first message for an incident.
func (b *Business) RunHeld() {
	if b == nil {
		return
	}
	b.runsHeld.Inc()
}
