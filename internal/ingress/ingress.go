// Package ingress is Recoup's HTTP event ingress (`starter serve`): native events signed per
// the Standard Webhooks spec on POST /v1/events, Stripe's own webhooks on POST /v1/stripe,
// health, readiness and Prometheus metrics. An event is written to the PostgreSQL event log
// before any 2xx is returned; eventlog.Relay then delivers it to Temporal, retrying until it can.
package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/stripe"
)

// Server answers the ingress HTTP endpoints.
type Server struct {
	ingest   *eventlog.Ingestor
	secrets  []*standardwebhooks.Webhook
	stripe   *stripe.Verifier // nil: /v1/stripe answers 404
	sendgrid SendGridVerifier // nil: /v1/providers/sendgrid/events answers 404
	twilio   TwilioVerifier   // nil: /v1/providers/twilio/* answer 404
	// publicBaseURL is the address Twilio calls (RECOUP_PUBLIC_BASE_URL, no trailing slash):
	// signatures are computed over it, whatever proxy rewrote the request on its way.
	publicBaseURL string
	twilioInbound TwilioFormHandler // nil: /v1/providers/twilio/inbound answers 404
	relay         *eventlog.Relay   // nudged after each accepted event; may be nil
	metrics       *observability.IngressMetrics
	registry      *prometheus.Registry
	ready         func(context.Context) error
	log           *slog.Logger
	extra         map[string]http.Handler
}

// Options configure a Server.
type Options struct {
	Ingest        *eventlog.Ingestor
	Secrets       []string // Standard Webhooks secrets ("whsec_…"); any may match (rotation)
	StripeSecrets []string // Stripe endpoint secrets ("whsec_…"); none disables /v1/stripe
	Relay         *eventlog.Relay
	// SendGrid verifies the Event Webhook (sendgrid.NewEventVerifier); nil disables
	// POST /v1/providers/sendgrid/events.
	SendGrid SendGridVerifier
	// Twilio verifies X-Twilio-Signature (twilio.NewRequestValidator) over PublicBaseURL +
	// the request's path and query; nil disables POST /v1/providers/twilio/status and
	// /v1/providers/twilio/inbound.
	Twilio        TwilioVerifier
	PublicBaseURL string
	// TwilioInbound answers an inbound SMS (inbound.Server.HandleTwilio) once Twilio verified
	// its form; nil disables POST /v1/providers/twilio/inbound.
	TwilioInbound TwilioFormHandler
	Metrics       *observability.IngressMetrics
	Registry      *prometheus.Registry
	Ready         func(context.Context) error // readiness: PostgreSQL and Temporal reachable
	Logger        *slog.Logger
	// Extra are more routes ("POST /v1/providers/…" → handler): the providers' inbound
	// webhooks (internal/inbound) that verify themselves (SendGrid Inbound Parse's secret).
	Extra map[string]http.Handler
}

// New checks the options and builds a Server. Errors name the variable at fault.
func New(o Options) (*Server, error) {
	if len(o.Secrets) == 0 {
		return nil, errors.New("WEBHOOK_SECRETS: at least one Standard Webhooks secret (whsec_…) is required to accept events over HTTP")
	}
	s := &Server{ingest: o.Ingest, relay: o.Relay, metrics: o.Metrics, registry: o.Registry, ready: o.Ready, log: o.Logger, extra: o.Extra}
	for i, sec := range o.Secrets {
		// NewWebhook takes "whsec_" alone as an empty HMAC key, with which anyone can sign.
		// (config.CheckWebhookSecret, run at startup, also refuses short and example keys.)
		if strings.TrimPrefix(strings.TrimSpace(sec), "whsec_") == "" {
			return nil, fmt.Errorf("WEBHOOK_SECRETS: secret %d has an empty key after whsec_, so anyone could sign", i+1)
		}
		wh, err := standardwebhooks.NewWebhook(sec)
		if err != nil {
			return nil, fmt.Errorf("WEBHOOK_SECRETS: secret %d is not a valid whsec_ secret: %v", i+1, err)
		}
		s.secrets = append(s.secrets, wh)
	}
	if len(o.StripeSecrets) > 0 {
		v, err := stripe.New(o.StripeSecrets, 0)
		if err != nil {
			return nil, fmt.Errorf("STRIPE_WEBHOOK_SECRETS: %w", err)
		}
		s.stripe = v
	}
	s.sendgrid, s.twilio, s.twilioInbound = o.SendGrid, o.Twilio, o.TwilioInbound
	if o.Twilio != nil {
		u, err := url.Parse(o.PublicBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("RECOUP_PUBLIC_BASE_URL: %q is not the http(s) address Twilio calls (needed to verify its signatures)", o.PublicBaseURL)
		}
		s.publicBaseURL = strings.TrimRight(o.PublicBaseURL, "/")
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Handler routes the endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", s.handleEvents)
	mux.HandleFunc("POST /v1/stripe", s.handleStripe)
	mux.HandleFunc("POST /v1/providers/sendgrid/events", s.handleSendGrid)
	mux.HandleFunc("POST /v1/providers/twilio/status", s.handleTwilioStatus)
	mux.HandleFunc("POST "+TwilioInboundPath, s.handleTwilioInbound)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	for pattern, h := range s.extra {
		mux.Handle(pattern, h)
	}
	if s.registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	}
	return mux
}

type answer struct {
	Status     string   `json:"status"`
	EventID    string   `json:"event_id,omitempty"`
	WorkflowID string   `json:"workflow_id,omitempty"`
	Error      string   `json:"error,omitempty"`
	Problems   []string `json:"problems,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) count(source, typ, result string) {
	if s.metrics != nil {
		if typ == "" {
			typ = "unknown"
		}
		s.metrics.Received.WithLabelValues(source, typ, result).Inc()
	}
}

// readBody enforces JSON and the size limit, answering 415 or 413 itself.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, source string) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		s.count(source, "", "unsupported_media_type")
		writeJSON(w, http.StatusUnsupportedMediaType, answer{Status: "rejected", Error: "Content-Type must be application/json"})
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, events.MaxSize))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		s.count(source, "", "too_large")
		writeJSON(w, http.StatusRequestEntityTooLarge, answer{Status: "rejected", Error: fmt.Sprintf("body larger than %d bytes", events.MaxSize)})
		return nil, false
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, answer{Status: "rejected", Error: "could not read the body: " + err.Error()})
		return nil, false
	}
	return body, true
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r, "http")
	if !ok {
		return
	}
	if err := s.verify(body, r.Header); err != nil {
		s.count("http", "", "unauthorized")
		writeJSON(w, http.StatusUnauthorized, answer{Status: "rejected", Error: err.Error()})
		return
	}
	s.record(w, r.Context(), body, "http")
}

// verify accepts the body when any configured secret verifies its signature (±5 minutes;
// constant-time comparison in the reference library).
func (s *Server) verify(body []byte, h http.Header) error {
	var err error
	for _, wh := range s.secrets {
		if err = wh.Verify(body, h); err == nil {
			return nil
		}
		if errors.Is(err, standardwebhooks.ErrRequiredHeaders) {
			return errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
		}
		if errors.Is(err, standardwebhooks.ErrMessageTooOld) || errors.Is(err, standardwebhooks.ErrMessageTooNew) {
			return errors.New("webhook-timestamp is more than 5 minutes from now")
		}
		if errors.Is(err, standardwebhooks.ErrInvalidHeaders) {
			return errors.New("webhook-timestamp is not a Unix time in seconds")
		}
	}
	return errors.New("no valid signature for this body")
}

// record writes a verified event to the log and answers.
func (s *Server) record(w http.ResponseWriter, ctx context.Context, body []byte, source string) {
	res, ev, err := s.ingest.Record(ctx, body, source)
	if err == nil && !res.Duplicate && !res.ClampedFrom.IsZero() && s.metrics != nil {
		s.metrics.Clamped.WithLabelValues(source).Inc()
	}
	var ve *events.ValidationError
	switch {
	case errors.As(err, &ve):
		s.count(source, ev.Type, "invalid")
		writeJSON(w, http.StatusBadRequest, answer{Status: "rejected", Error: "invalid event", Problems: ve.Problems})
	case errors.Is(err, postgres.ErrEventConflict):
		s.count(source, res.Type, "conflict")
		writeJSON(w, http.StatusConflict, answer{Status: "rejected", EventID: res.EventID,
			Error: "this event_id was already recorded with a different body"})
	case err != nil:
		s.count(source, res.Type, "unavailable")
		s.log.Error("event not recorded: the event log is unavailable", "source", source, "event_id", res.EventID, "error", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, answer{Status: "unavailable", EventID: res.EventID,
			Error: "the event log is unavailable; nothing was recorded, retry later"})
	case res.Duplicate:
		s.count(source, res.Type, "duplicate")
		writeJSON(w, http.StatusOK, answer{Status: "duplicate", EventID: res.EventID, WorkflowID: res.WorkflowID})
	default:
		s.count(source, res.Type, "accepted")
		if s.relay != nil {
			s.relay.Nudge()
		}
		writeJSON(w, http.StatusAccepted, answer{Status: "accepted", EventID: res.EventID, WorkflowID: res.WorkflowID})
	}
}

func (s *Server) handleStripe(w http.ResponseWriter, r *http.Request) {
	if s.stripe == nil {
		writeJSON(w, http.StatusNotFound, answer{Status: "rejected", Error: "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRETS)"})
		return
	}
	body, ok := s.readBody(w, r, "stripe")
	if !ok {
		return
	}
	native, stripeType, ignored, err := s.stripe.Translate(body, r.Header.Get("Stripe-Signature"))
	switch {
	case errors.Is(err, stripe.ErrSignature):
		s.count("stripe", "", "unauthorized")
		writeJSON(w, http.StatusUnauthorized, answer{Status: "rejected", Error: err.Error()})
	case err != nil:
		s.count("stripe", stripeType, "invalid")
		writeJSON(w, http.StatusBadRequest, answer{Status: "rejected", Error: err.Error()})
	case ignored:
		// Stripe must not retry event types Recoup does not use.
		s.count("stripe", stripeType, "ignored")
		writeJSON(w, http.StatusOK, answer{Status: "ignored"})
	default:
		s.record(w, r.Context(), native, "stripe")
	}
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.ready != nil {
		if err := s.ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
