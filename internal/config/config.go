// Package config reads Recoup's configuration from the environment. Every variable has a
// default where one makes sense; an invalid value is an error that names the variable.
// Temporal connection settings are the SDK's standard TEMPORAL_* variables (and profile
// file), read by go.temporal.io/sdk/contrib/envconfig.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"

	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/devoidc"
	"github.com/recoup-dunning/recoup/internal/memlimit"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// DefaultDatabaseURL is the local PostgreSQL the demo and tests use.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/recoup?sslmode=disable"

// Config is the whole configuration of the worker and the starter.
// TwilioStatusPath is where `starter serve` takes Twilio's status callbacks.
const TwilioStatusPath = "/v1/providers/twilio/status"

type Config struct {
	DatabaseURL string
	PromptsDir  string

	LLM      openai.Config // used when LLM.APIKey or LLM.BaseURL is set
	SendGrid sendgrid.Config
	Twilio   twilio.Config
	Webhook  webhook.Config
	// Failure-spike incidents: ALERT_WEBHOOK_URL/ALERT_WEBHOOK_SECRET (Standard Webhooks)
	// and ALERT_EMAIL (sent through SendGrid when it is configured). Unset: log only.
	AlertWebhook webhook.Config
	AlertEmail   string

	PaymentURL     string
	UnsubscribeURL string

	Schedule         []time.Duration    // RECOUP_SCHEDULE, overrides the policy's schedule
	FinalWait        time.Duration      // RECOUP_FINAL_WAIT, overrides the policy's final wait
	ContactCap       *policy.ContactCap // RECOUP_CONTACT_CAP "messages/days", overrides the policy's
	IgnoreQuietHours bool
	MaxClockSkew     time.Duration // RECOUP_MAX_CLOCK_SKEW: future event times beyond it are clamped (default 5m)

	LogLevel  slog.Level
	LogFormat string // json | text

	// GrpcCompression is TEMPORAL_GRPC_COMPRESSION: "none" (default) or "gzip", how the
	// Temporal client compresses its requests (and so the server its answers).
	GrpcCompression string

	// Delivery is RECOUP_DELIVERY: DeliveryLive (the default) sends through the providers
	// whose credentials are set; DeliveryLog ignores them (sandbox: every message is
	// rendered, stored and logged, never sent; an ALERT_EMAIL is logged too).
	Delivery string

	IngressAddr   string   // INGRESS_ADDR, for `starter serve`
	WebhookSecret []string // WEBHOOK_SECRETS: Standard Webhooks secrets accepted on POST /v1/events
	StripeSecrets []string // STRIPE_WEBHOOK_SECRETS: Stripe endpoint secrets for POST /v1/stripe
	// StripeExecutor is RECOUP_STRIPE_EXECUTOR=1: the worker pays an invoice through Stripe
	// at the time Recoup advised (STRIPE_API_KEY; STRIPE_API_BASE for stripe-mock).
	StripeExecutor bool
	StripeAPIKey   string
	StripeAPIBase  string
	// PublicBaseURL is RECOUP_PUBLIC_BASE_URL: the address the providers reach `starter
	// serve` at (behind any proxy), e.g. https://recoup.shop.example. Twilio's status
	// callbacks are sent to <it>/v1/providers/twilio/status and their signatures verified
	// against it; required when Twilio sends SMS. Twilio's inbound-SMS signature covers it
	// too (POST /v1/providers/twilio/inbound).
	PublicBaseURL string
	// SendGridWebhookKey is SENDGRID_WEBHOOK_PUBLIC_KEY: the signed Event Webhook's
	// verification key (base64); unset, POST /v1/providers/sendgrid/events answers 404.
	SendGridWebhookKey string
	// SendGridInboundSecret is SENDGRID_INBOUND_SECRET: the last path segment (or basic-auth
	// password) of the SendGrid Inbound Parse URL; empty disables email replies.
	SendGridInboundSecret string
	// ReconcileWindow is RECOUP_RECONCILE_WINDOW (default 30m): how long after an attempt
	// whose outcome is unknown a provider event naming it may arrive; none by then proves
	// the provider never accepted it, and the step is sent again, once.
	ReconcileWindow time.Duration
	KafkaBrokers    []string // KAFKA_BROKERS, for `starter consume`
	KafkaTopic      string   // KAFKA_TOPIC
	KafkaGroup      string   // KAFKA_GROUP
	RelayParallel   int      // RELAY_PARALLEL: invoices the relay delivers to Temporal at once
	MetricsAddr     string   // METRICS_ADDR: the worker's /metrics and /healthz

	Tuning Tuning // WORKER_* and *_SENDS_PER_SECOND
	// WorkerMemory is RECOUP_WORKER_MEMORY (bytes; 0 when unset): the memory one worker
	// process may use, which sizes its sticky cache unless WORKER_STICKY_CACHE_SIZE is set
	// (internal/memlimit). Unset, the worker reads its container's limit.
	WorkerMemory int64

	Codec        *codec.Codec // RECOUP_CODEC_KEYS: payload encryption, nil when unset
	CodecAddr    string       // CODEC_ADDR, for `starter codec-server`
	CodecToken   string       // CODEC_AUTH_TOKEN
	CodecOrigins []string     // CODEC_CORS_ORIGINS: Web UI origins allowed to call the codec server
	// CODEC_OIDC_*: signed-in Web UI users' access tokens the codec server accepts; Issuer
	// empty when not configured.
	CodecOIDC codec.OIDCConfig
	// ReportToken is RECOUP_REPORT_TOKEN: the bearer token of the recovery page the ingress
	// serves at GET /reports/recovery; empty: the page is not served (404).
	ReportToken string
	// CodecOIDCAnyUser: CODEC_OIDC_ALLOWED_EMAILS=any-signed-in-user, the explicit opt-out
	// of the allow-list (required with CODEC_OIDC_ISSUER otherwise).
	CodecOIDCAnyUser bool
	// CODEC_TLS_CERT and CODEC_TLS_KEY (PEM files), or CODEC_TLS_SELF_SIGNED: the codec
	// server serves HTTPS, which the Web UI needs to pass the signed-in user's token.
	CodecTLSCert, CodecTLSKey string
	CodecTLSSelfSigned        bool
	// CODEC_TLS_SELF_SIGNED_DIR: where the self-signed certificate is kept across restarts
	// (empty: a new one at each start).
	CodecTLSSelfSignedDir string
	// RECOUP_DEV_OIDC_*: `starter dev-oidc`, the development OpenID provider.
	DevOIDC     devoidc.Config
	DevOIDCAddr string // RECOUP_DEV_OIDC_ADDR (default :8234)
}

// Tuning is the worker's capacity configuration (converted to workflows.Tuning, which has
// the same fields). Zero values keep the SDK's defaults.
type Tuning struct {
	MaxConcurrentActivities    int     // WORKER_MAX_CONCURRENT_ACTIVITIES
	MaxConcurrentWorkflowTasks int     // WORKER_MAX_CONCURRENT_WORKFLOW_TASKS
	ActivityPollers            int     // WORKER_ACTIVITY_POLLERS
	WorkflowPollers            int     // WORKER_WORKFLOW_POLLERS
	EmailsPerSecond            float64 // EMAIL_SENDS_PER_SECOND: across all workers (0: unlimited)
	SMSPerSecond               float64 // SMS_SENDS_PER_SECOND: across all workers (0: unlimited)
	// StickyCacheSize bounds how many workflow executions the process keeps in memory
	// between workflow tasks (WORKER_STICKY_CACHE_SIZE; 0: the SDK's default, 10,000). A
	// run evicted from the cache is replayed from its history on its next task.
	StickyCacheSize int
	// PollerAutoscaling lets the SDK scale the number of pollers on the server's feedback
	// (the default; WORKER_POLLER_AUTOSCALING=false keeps a fixed number, the SDK's 2 or
	// WORKER_*_POLLERS); WORKER_*_POLLERS are then the maximums. A first touch is bound by
	// the latency of its round trips, which two fixed pollers serialise (BENCHMARKS.md).
	PollerAutoscaling bool
}

// Delivery modes (RECOUP_DELIVERY).
const (
	DeliveryLive = "live"
	DeliveryLog  = "log"
)

// LLMEnabled reports whether an OpenAI-compatible endpoint is configured: an API key (for
// OpenAI's own endpoint or another), or OPENAI_BASE_URL alone (a local server such as Ollama
// or vLLM that needs no key).
func (c Config) LLMEnabled() bool { return c.LLM.APIKey != "" || c.LLM.BaseURL != "" }

// EmailEnabled reports whether SendGrid credentials are configured.
func (c Config) EmailEnabled() bool { return c.SendGrid.APIKey != "" }

// SMSEnabled reports whether Twilio credentials are configured.
func (c Config) SMSEnabled() bool { return c.Twilio.AccountSID != "" }

// FromEnv reads the configuration with getenv (os.Getenv in the binaries).
func FromEnv(getenv func(string) string) (Config, error) {
	e := &env{getenv: getenv}
	c := readConfig(e)
	c.readServices(e)
	tuning, err := TuningFromEnv(getenv)
	e.errs = append(e.errs, err)
	c.Tuning = tuning
	if v := e.get("RECOUP_WORKER_MEMORY", ""); v != "" {
		m, err := memlimit.ParseSize(v)
		if err != nil {
			e.fail(fmt.Errorf("RECOUP_WORKER_MEMORY: %w", err))
		}
		c.WorkerMemory = m
	}
	c.readCodec(e)
	c.readOverrides(e)
	c.readLogging(e)
	c.readDelivery(e)
	e.errs = append(e.errs, c.checkCombinations()...)
	return c, errors.Join(e.errs...)
}

// env reads variables with getenv, trimmed, and collects the faults of the values it reads.
// (Its methods are named get, dur, boolean, urlVar and list: TestEveryVariableDocumented
// finds the variables read by those names.)
type env struct {
	getenv func(string) string
	errs   []error
}

func (e *env) fail(err error) { e.errs = append(e.errs, err) }

// get returns the variable, or def when it is unset or blank.
func (e *env) get(name, def string) string {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		return v
	}
	return def
}

// dur returns the variable as a non-negative duration, or def when unset or not one.
func (e *env) dur(name string, def time.Duration) time.Duration {
	v := e.get(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(fmt.Errorf("%s: %q is not a duration like 20s or 72h", name, v))
		return def
	}
	return d
}

// boolean returns the variable as true or false (false when unset).
func (e *env) boolean(name string) bool {
	v := e.get(name, "false")
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(fmt.Errorf("%s: %q is not true or false", name, v))
	}
	return b
}

// urlVar returns the variable (or def), which must be an http(s) URL; {invoice_id} and
// {customer_id} may stand in it.
func (e *env) urlVar(name, def string) string {
	v := e.get(name, def)
	if v == "" {
		return ""
	}
	u, err := url.Parse(strings.NewReplacer("{invoice_id}", "x", "{customer_id}", "x").Replace(v))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.fail(fmt.Errorf("%s: %q is not an http(s) URL", name, v))
	}
	return v
}

// list returns the variable's comma-separated items, trimmed, blanks left out.
func (e *env) list(name string) []string {
	var out []string
	for _, part := range strings.Split(e.get(name, ""), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// readConfig reads the database, prompts, providers, webhooks, URLs and run settings.
func readConfig(e *env) Config {
	return Config{
		DatabaseURL:      e.get("DATABASE_URL", DefaultDatabaseURL),
		PromptsDir:       e.get("PROMPTS_DIR", ""),
		LLM:              readOpenAI(e),
		SendGrid:         readSendGrid(e),
		Twilio:           readTwilio(e),
		Webhook:          readBillingWebhook(e),
		AlertWebhook:     readAlertWebhook(e),
		AlertEmail:       e.get("ALERT_EMAIL", ""),
		PaymentURL:       e.urlVar("PAYMENT_URL_TEMPLATE", "https://billing.example.com/invoices/{invoice_id}/pay"),
		UnsubscribeURL:   e.urlVar("UNSUBSCRIBE_URL_TEMPLATE", "https://billing.example.com/customers/{customer_id}/reminders/unsubscribe"),
		FinalWait:        e.dur("RECOUP_FINAL_WAIT", 0),
		IgnoreQuietHours: e.boolean("RECOUP_IGNORE_QUIET_HOURS"),
		MaxClockSkew:     e.dur("RECOUP_MAX_CLOCK_SKEW", 5*time.Minute),
		PublicBaseURL:    strings.TrimRight(e.urlVar("RECOUP_PUBLIC_BASE_URL", ""), "/"),
		ReconcileWindow:  e.dur("RECOUP_RECONCILE_WINDOW", 30*time.Minute),

		SendGridWebhookKey: e.get("SENDGRID_WEBHOOK_PUBLIC_KEY", ""),
		LogFormat:          e.get("LOG_FORMAT", "json"),
		GrpcCompression:    e.get("TEMPORAL_GRPC_COMPRESSION", "none"),
	}
}

func readOpenAI(e *env) openai.Config {
	return openai.Config{
		APIKey:  e.get("OPENAI_API_KEY", ""),
		BaseURL: e.urlVar("OPENAI_BASE_URL", ""),
		Model:   e.get("OPENAI_MODEL", ""),
		Timeout: e.dur("OPENAI_TIMEOUT", 20*time.Second),
	}
}

func readSendGrid(e *env) sendgrid.Config {
	return sendgrid.Config{
		APIKey:    e.get("SENDGRID_API_KEY", ""),
		BaseURL:   e.urlVar("SENDGRID_BASE_URL", ""),
		FromEmail: e.get("EMAIL_FROM", "billing@example.com"),
		FromName:  e.get("EMAIL_FROM_NAME", "Billing"),
		Timeout:   e.dur("SENDGRID_TIMEOUT", 10*time.Second),
	}
}

func readTwilio(e *env) twilio.Config {
	return twilio.Config{
		AccountSID:          e.get("TWILIO_ACCOUNT_SID", ""),
		AuthToken:           e.get("TWILIO_AUTH_TOKEN", ""),
		From:                e.get("TWILIO_FROM", ""),
		MessagingServiceSID: e.get("TWILIO_MESSAGING_SERVICE_SID", ""),
		BaseURL:             e.urlVar("TWILIO_BASE_URL", ""),
		StatusCallbackURL:   e.urlVar("TWILIO_STATUS_CALLBACK_URL", ""),
		Timeout:             e.dur("TWILIO_TIMEOUT", 10*time.Second),
	}
}

func readBillingWebhook(e *env) webhook.Config { return readWebhook(e, "BILLING_WEBHOOK") }

func readAlertWebhook(e *env) webhook.Config { return readWebhook(e, "ALERT_WEBHOOK") }

// readWebhook reads PREFIX_URL, PREFIX_SECRET and PREFIX_TIMEOUT.
func readWebhook(e *env, prefix string) webhook.Config {
	return webhook.Config{
		URL:     e.urlVar(prefix+"_URL", ""),
		Secret:  e.get(prefix+"_SECRET", ""),
		Timeout: e.dur(prefix+"_TIMEOUT", 10*time.Second),
	}
}

// readServices reads the listen addresses, the ingress and inbound secrets, Kafka and the relay.
func (c *Config) readServices(e *env) {
	c.IngressAddr = e.get("INGRESS_ADDR", ":8080")
	c.MetricsAddr = e.get("METRICS_ADDR", ":9090")
	c.WebhookSecret = e.list("WEBHOOK_SECRETS")
	c.StripeSecrets = e.list("STRIPE_WEBHOOK_SECRETS")
	c.StripeExecutor = e.boolean("RECOUP_STRIPE_EXECUTOR")
	c.StripeAPIKey = e.get("STRIPE_API_KEY", "")
	c.StripeAPIBase = e.urlVar("STRIPE_API_BASE", "")
	c.SendGridInboundSecret = e.get("SENDGRID_INBOUND_SECRET", "")
	c.KafkaBrokers = e.list("KAFKA_BROKERS")
	c.KafkaTopic = e.get("KAFKA_TOPIC", "recoup.events")
	c.KafkaGroup = e.get("KAFKA_GROUP", "recoup-ingress")
	if v := e.get("RELAY_PARALLEL", "4"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 256 {
			e.fail(fmt.Errorf("RELAY_PARALLEL: %q is not a number from 1 to 256", v))
		}
		c.RelayParallel = n
	}
}

// readCodec reads the payload codec's keys and the codec server's address, token and origins.
func (c *Config) readCodec(e *env) {
	if v := e.get("RECOUP_CODEC_KEYS", ""); v != "" {
		k, err := codec.ParseKeys(v)
		if err == nil {
			err = checkCodecKeys(v)
		}
		if err != nil {
			e.fail(err)
		}
		c.Codec = k
	}
	c.CodecAddr = e.get("CODEC_ADDR", ":8081")
	c.CodecToken = e.get("CODEC_AUTH_TOKEN", "")
	c.ReportToken = e.get("RECOUP_REPORT_TOKEN", "")
	c.CodecOrigins = e.list("CODEC_CORS_ORIGINS")
	if len(c.CodecOrigins) == 0 {
		c.CodecOrigins = []string{"http://localhost:8233"}
	}
	c.CodecOIDC = codec.OIDCConfig{
		Issuer:        e.get(codec.EnvOIDCIssuer, ""),
		DiscoveryURL:  e.get(codec.EnvOIDCDiscoveryURL, ""),
		Audience:      e.get(codec.EnvOIDCAudience, e.get("TEMPORAL_AUTH_CLIENT_ID", "")),
		AllowedEmails: e.list(codec.EnvOIDCAllowedEmails),
	}
	if slices.Contains(c.CodecOIDC.AllowedEmails, AnySignedInUser) {
		if len(c.CodecOIDC.AllowedEmails) > 1 {
			e.fail(fmt.Errorf("%s: %s cannot be combined with emails or domains", codec.EnvOIDCAllowedEmails, AnySignedInUser))
		}
		c.CodecOIDC.AllowedEmails, c.CodecOIDCAnyUser = nil, true
	}
	c.CodecTLSCert, c.CodecTLSKey = e.get("CODEC_TLS_CERT", ""), e.get("CODEC_TLS_KEY", "")
	switch v := e.get("CODEC_TLS_SELF_SIGNED", "false"); v {
	case "true", "1":
		c.CodecTLSSelfSigned = true
	case "false", "0":
	default:
		e.fail(fmt.Errorf("CODEC_TLS_SELF_SIGNED: %q is not true or false", v))
	}
	c.CodecTLSSelfSignedDir = e.get("CODEC_TLS_SELF_SIGNED_DIR", "")
	if (c.CodecTLSCert == "") != (c.CodecTLSKey == "") {
		e.fail(errors.New("CODEC_TLS_CERT and CODEC_TLS_KEY: set both (PEM certificate and key files) or neither"))
	}
	if c.CodecTLSCert != "" && c.CodecTLSSelfSigned {
		e.fail(errors.New("CODEC_TLS_SELF_SIGNED: set it or CODEC_TLS_CERT/CODEC_TLS_KEY, not both"))
	}
	c.DevOIDCAddr = e.get("RECOUP_DEV_OIDC_ADDR", ":8234")
	c.DevOIDC = devoidc.Config{
		PublicURL:    e.get("RECOUP_DEV_OIDC_PUBLIC_URL", "http://localhost:8234"),
		ClientID:     e.get("RECOUP_DEV_OIDC_CLIENT_ID", "temporal-ui"),
		ClientSecret: e.get("RECOUP_DEV_OIDC_CLIENT_SECRET", ""),
		RedirectURIs: e.list("RECOUP_DEV_OIDC_REDIRECT_URIS"),
		User:         e.get("RECOUP_DEV_OIDC_USER", "operator"),
		Password:     e.getenv("RECOUP_DEV_OIDC_PASSWORD"),
		Email:        e.get("RECOUP_DEV_OIDC_EMAIL", ""),
	}
	if len(c.DevOIDC.RedirectURIs) == 0 {
		c.DevOIDC.RedirectURIs = []string{"http://localhost:8233/auth/sso/callback"}
	}
}

// readOverrides reads RECOUP_CONTACT_CAP and RECOUP_SCHEDULE, which override the policy's.
func (c *Config) readOverrides(e *env) {
	if v := e.get("RECOUP_CONTACT_CAP", ""); v != "" {
		var cc policy.ContactCap
		if _, err := fmt.Sscanf(v, "%d/%d", &cc.Messages, &cc.Days); err != nil || cc.Messages < 1 || cc.Days < 1 {
			e.fail(fmt.Errorf("RECOUP_CONTACT_CAP: %q is not messages/days, like 2/7", v))
		} else {
			c.ContactCap = &cc
		}
	}
	if v := e.get("RECOUP_SCHEDULE", ""); v != "" {
		for i, part := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d < 0 || (i > 0 && d <= c.Schedule[i-1]) {
				e.fail(fmt.Errorf("RECOUP_SCHEDULE: %q must be increasing durations separated by commas, like 0s,30s,1m", v))
				c.Schedule = nil
				break
			}
			c.Schedule = append(c.Schedule, d)
		}
	}
}

// readLogging reads LOG_LEVEL and checks LOG_FORMAT (read with the rest).
func (c *Config) readLogging(e *env) {
	if err := c.LogLevel.UnmarshalText([]byte(e.get("LOG_LEVEL", "info"))); err != nil {
		e.fail(fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", e.get("LOG_LEVEL", "")))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		e.fail(fmt.Errorf("LOG_FORMAT: %q is not json or text", c.LogFormat))
	}
	if _, err := GrpcCompression(c.GrpcCompression); err != nil {
		e.fail(err)
	}
}

// GrpcCompression maps TEMPORAL_GRPC_COMPRESSION to the client's setting. "none" (the
// default, also for ""): gzip was 5% of the worker's CPU in a profile of the first-touch
// benchmark, and costs the server decompressing every request and compressing every answer
// (BENCHMARKS.md), for payloads that are small, and ciphertext (which does not compress)
// when RECOUP_CODEC_KEYS is set. "gzip" is the SDK's own default, for a link where
// bytes cost more than CPU.
func GrpcCompression(v string) (client.GrpcCompression, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "none":
		return &client.GrpcCompressionNone{}, nil
	case "gzip":
		return &client.GrpcCompressionGzip{}, nil
	}
	return nil, fmt.Errorf("TEMPORAL_GRPC_COMPRESSION: %q is not none or gzip", v)
}

// readDelivery reads RECOUP_DELIVERY; log mode drops the provider credentials.
func (c *Config) readDelivery(e *env) {
	switch c.Delivery = e.get("RECOUP_DELIVERY", DeliveryLive); c.Delivery {
	case DeliveryLive:
	case DeliveryLog:
		// Sandbox: no provider is called, whatever credentials the environment holds.
		c.SendGrid.APIKey, c.Twilio.AccountSID, c.Twilio.AuthToken = "", "", ""
	default:
		e.fail(fmt.Errorf("RECOUP_DELIVERY: %q is not live or log", c.Delivery))
	}
}

// checkCombinations checks what no single variable shows: the database URL, the SMS settings
// (deriving Twilio's status callback URL), the reconcile window, the secrets, the webhooks'
// secrets and the alert email.
func (c *Config) checkCombinations() []error {
	var errs []error
	if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
		// A password with characters that a URL reserves (/, @, :, …) must be
		// percent-encoded; compose passes it as PGPASSWORD instead.
		errs = append(errs, fmt.Errorf("DATABASE_URL: %w", err))
	}
	errs = append(errs, c.checkSMS()...)
	if c.ReconcileWindow <= 0 {
		errs = append(errs, errors.New("RECOUP_RECONCILE_WINDOW: must be a positive duration, e.g. 30m"))
	}
	if c.StripeExecutor && c.StripeAPIKey == "" {
		errs = append(errs, errors.New("STRIPE_API_KEY: required when RECOUP_STRIPE_EXECUTOR=1"))
	}
	errs = append(errs, c.checkSecrets()...)
	if c.Webhook.URL != "" && c.Webhook.Secret == "" {
		errs = append(errs, errors.New("BILLING_WEBHOOK_SECRET: required when BILLING_WEBHOOK_URL is set"))
	}
	if c.AlertWebhook.URL != "" && c.AlertWebhook.Secret == "" {
		errs = append(errs, errors.New("ALERT_WEBHOOK_SECRET: required when ALERT_WEBHOOK_URL is set"))
	}
	if c.AlertEmail != "" {
		if a, err := mail.ParseAddress(c.AlertEmail); err != nil || a.Address != c.AlertEmail {
			errs = append(errs, errors.New("ALERT_EMAIL: must be a bare email address, e.g. oncall@shop.example"))
		} else if !c.EmailEnabled() && c.Delivery != DeliveryLog {
			errs = append(errs, errors.New("ALERT_EMAIL: needs SENDGRID_API_KEY to send through (or RECOUP_DELIVERY=log, which logs it)"))
		}
	}
	return errs
}

// checkSMS checks the Twilio settings when SMS is enabled, deriving the status callback URL
// from RECOUP_PUBLIC_BASE_URL when it is not set (Require checks the worker has one).
func (c *Config) checkSMS() []error {
	if !c.SMSEnabled() {
		return nil
	}
	var errs []error
	if c.Twilio.AuthToken == "" {
		errs = append(errs, errors.New("TWILIO_AUTH_TOKEN: required when TWILIO_ACCOUNT_SID is set"))
	}
	if c.Twilio.From == "" && c.Twilio.MessagingServiceSID == "" {
		errs = append(errs, errors.New("TWILIO_FROM: required (or TWILIO_MESSAGING_SERVICE_SID) when TWILIO_ACCOUNT_SID is set"))
	}
	// Every SMS carries its idempotency key to Twilio in its status callback URL: the
	// key is how a send whose outcome is unknown is settled from Twilio's evidence.
	if c.Twilio.StatusCallbackURL == "" && c.PublicBaseURL != "" {
		c.Twilio.StatusCallbackURL = c.PublicBaseURL + TwilioStatusPath
	}
	return append(errs, c.checkTwilioCallback()...)
}

// checkSecrets refuses every secret that is set but empty of key material, too short, not
// random or an example (see CheckWebhookSecret, CheckStripeSecret, CheckToken). Unset
// optional secrets are fine; the commands that need one say so.
func (c Config) checkSecrets() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for i, s := range c.WebhookSecret {
		add(CheckWebhookSecret(fmt.Sprintf("WEBHOOK_SECRETS (secret %d)", i+1), s))
	}
	for i, s := range c.StripeSecrets {
		add(CheckStripeSecret(fmt.Sprintf("STRIPE_WEBHOOK_SECRETS (secret %d)", i+1), s))
	}
	if c.Webhook.Secret != "" {
		add(CheckWebhookSecret("BILLING_WEBHOOK_SECRET", c.Webhook.Secret))
	}
	if c.AlertWebhook.Secret != "" {
		add(CheckWebhookSecret("ALERT_WEBHOOK_SECRET", c.AlertWebhook.Secret))
	}
	if c.CodecToken != "" {
		add(CheckToken("CODEC_AUTH_TOKEN", c.CodecToken))
	}
	if c.ReportToken != "" {
		add(CheckToken("RECOUP_REPORT_TOKEN", c.ReportToken))
	}
	for _, cred := range []struct{ name, v string }{{"OPENAI_API_KEY", c.LLM.APIKey},
		{"SENDGRID_API_KEY", c.SendGrid.APIKey}, {"TWILIO_AUTH_TOKEN", c.Twilio.AuthToken},
		{"SENDGRID_INBOUND_SECRET", c.SendGridInboundSecret}} {
		if cred.v != "" {
			add(checkCredential(cred.name, cred.v))
		}
	}
	add(checkDatabasePassword(c.DatabaseURL))
	return errs
}

// TuningFromEnv reads the worker's capacity configuration (WORKER_*, *_SENDS_PER_SECOND)
// alone; FromEnv reads it too. Unset variables keep the SDK's defaults.
func TuningFromEnv(getenv func(string) string) (Tuning, error) {
	var errs []error
	intVar := func(name string) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive number", name, v))
		}
		return n
	}
	rateVar := func(name string) float64 {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return 0
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive rate (messages per second)", name, v))
		}
		return f
	}
	t := Tuning{
		MaxConcurrentActivities:    intVar("WORKER_MAX_CONCURRENT_ACTIVITIES"),
		MaxConcurrentWorkflowTasks: intVar("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS"),
		ActivityPollers:            intVar("WORKER_ACTIVITY_POLLERS"),
		WorkflowPollers:            intVar("WORKER_WORKFLOW_POLLERS"),
		EmailsPerSecond:            rateVar("EMAIL_SENDS_PER_SECOND"),
		SMSPerSecond:               rateVar("SMS_SENDS_PER_SECOND"),
		StickyCacheSize:            intVar("WORKER_STICKY_CACHE_SIZE"),
		PollerAutoscaling:          true,
	}
	if v := strings.TrimSpace(getenv("WORKER_POLLER_AUTOSCALING")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("WORKER_POLLER_AUTOSCALING: %q is not true or false", v))
		}
		t.PollerAutoscaling = b
	}
	return t, errors.Join(errs...)
}

// Logger builds the process logger.
// Emails and phone numbers are masked in every line.
func (c Config) Logger() *slog.Logger {
	return observability.NewLogger(c.LogFormat, c.LogLevel, os.Stderr)
}

// TemporalOptions are the client options: the SDK's standard environment configuration
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE,
// TEMPORAL_CONFIG_FILE), logging through logger, and the payload codec when
// RECOUP_CODEC_KEYS is set (every payload encrypted with AES-256-GCM).
func (c Config) TemporalOptions(logger *slog.Logger) (client.Options, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return client.Options{}, fmt.Errorf("TEMPORAL_* configuration: %w", err)
	}
	opts.Logger = tlog.NewStructuredLogger(logger)
	if opts.ConnectionOptions.GrpcCompression, err = GrpcCompression(c.GrpcCompression); err != nil {
		return client.Options{}, err
	}
	if c.Codec != nil {
		opts.DataConverter = codec.DataConverter(c.Codec)
	}
	return opts, nil
}

// LazyTemporal returns a Temporal client that connects on first use, so that a process can
// start (and accept events into the log) while Temporal is unreachable.
func (c Config) LazyTemporal(logger *slog.Logger, adjust ...func(*client.Options)) (client.Client, error) {
	opts, err := c.TemporalOptions(logger)
	if err != nil {
		return nil, err
	}
	for _, f := range adjust {
		f(&opts)
	}
	tc, err := client.NewLazyClient(opts)
	if err != nil {
		return nil, fmt.Errorf("TEMPORAL_* configuration: %w", err)
	}
	return tc, nil
}

// DialTemporal connects to Temporal (see TemporalOptions); adjust, when given, changes the
// options first (metrics handler, interceptors).
func (c Config) DialTemporal(logger *slog.Logger, adjust ...func(*client.Options)) (client.Client, error) {
	opts, err := c.TemporalOptions(logger)
	if err != nil {
		return nil, err
	}
	for _, f := range adjust {
		f(&opts)
	}
	tc, err := client.Dial(opts)
	if err != nil {
		addr := opts.HostPort
		if addr == "" {
			addr = client.DefaultHostPort
		}
		return nil, fmt.Errorf("connect to Temporal at %s (TEMPORAL_ADDRESS): %w", addr, err)
	}
	return tc, nil
}

// Role is what a process does with the configuration; each has requirements of its own
// beyond FromEnv's (see Require).
type Role string

// The roles of the binaries: the worker, and the starter's long-running commands and jobs.
const (
	RoleWorker      Role = "worker"
	RoleServe       Role = "serve"
	RoleConsume     Role = "consume"
	RoleCodecServer Role = "codec-server"
	RoleSetup       Role = "setup"
	RoleDevOIDC     Role = "dev-oidc"
)

// AnySignedInUser is the CODEC_OIDC_ALLOWED_EMAILS value that lets every user the OpenID
// provider signs in decode (the allow-list is otherwise required with CODEC_OIDC_ISSUER).
const AnySignedInUser = "any-signed-in-user"

// Require reports what the role needs that the configuration lacks. The binaries call it
// at start-up, and the deployment test calls it with the environment compose gives each
// service.
func (c Config) Require(role Role) error {
	switch role {
	case RoleServe:
		if len(c.WebhookSecret) == 0 {
			return errors.New("WEBHOOK_SECRETS: at least one Standard Webhooks secret (whsec_…) is required to accept events over HTTP")
		}
	case RoleConsume:
		if len(c.KafkaBrokers) == 0 {
			return errors.New("KAFKA_BROKERS: required by `starter consume` (host:port, comma-separated)")
		}
	case RoleCodecServer:
		if c.Codec == nil {
			return errors.New("RECOUP_CODEC_KEYS: required by the codec server")
		}
		if c.CodecToken == "" && c.CodecOIDC.Issuer == "" {
			return errors.New("CODEC_AUTH_TOKEN: required by the codec server unless CODEC_OIDC_ISSUER is set (generate one with: openssl rand -hex 32)")
		}
		if c.CodecOIDC.Issuer != "" && len(c.CodecOIDC.AllowedEmails) == 0 && !c.CodecOIDCAnyUser {
			return fmt.Errorf("%s: required with %s: list who may decode (emails or @domains, comma-separated), or set it to %s to let everyone the provider signs in decode customer data",
				codec.EnvOIDCAllowedEmails, codec.EnvOIDCIssuer, AnySignedInUser)
		}
	case RoleWorker:
		// Only the worker sends SMS: ingress, support commands and jobs run without it.
		if c.SMSEnabled() && c.Twilio.StatusCallbackURL == "" {
			return errors.New("RECOUP_PUBLIC_BASE_URL: required by the worker when TWILIO_ACCOUNT_SID is set (or TWILIO_STATUS_CALLBACK_URL): each SMS carries its idempotency key in Twilio's status callback to " + TwilioStatusPath + ", without which a send whose outcome is unknown cannot be settled")
		}
	case RoleDevOIDC:
		// The login form and the client secret are all that stand before decrypted data:
		// the same rules as every other secret.
		if err := CheckToken("RECOUP_DEV_OIDC_PASSWORD", c.DevOIDC.Password); c.DevOIDC.Password != "" && err != nil {
			return err
		}
		if err := CheckToken("RECOUP_DEV_OIDC_CLIENT_SECRET", c.DevOIDC.ClientSecret); c.DevOIDC.ClientSecret != "" && err != nil {
			return err
		}
		return c.DevOIDC.Check()
	case RoleSetup:
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return nil
}
