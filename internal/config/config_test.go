package config_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/openai"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := config.FromEnv(env(nil))
	if err != nil {
		t.Fatalf("FromEnv with an empty environment: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DatabaseURL", c.DatabaseURL, config.DefaultDatabaseURL},
		{"PromptsDir", c.PromptsDir, ""},
		{"LLM.Timeout", c.LLM.Timeout, 20 * time.Second},
		{"SendGrid.Timeout", c.SendGrid.Timeout, 10 * time.Second},
		{"SendGrid.FromEmail", c.SendGrid.FromEmail, "billing@example.com"},
		{"SendGrid.FromName", c.SendGrid.FromName, "Billing"},
		{"Twilio.Timeout", c.Twilio.Timeout, 10 * time.Second},
		{"Webhook.Timeout", c.Webhook.Timeout, 10 * time.Second},
		{"PaymentURL", c.PaymentURL, "https://billing.example.com/invoices/{invoice_id}/pay"},
		{"UnsubscribeURL", c.UnsubscribeURL, "https://billing.example.com/customers/{customer_id}/reminders/unsubscribe"},
		{"FinalWait", c.FinalWait, time.Duration(0)},
		{"IgnoreQuietHours", c.IgnoreQuietHours, false},
		{"LogLevel", c.LogLevel, slog.LevelInfo},
		{"LogFormat", c.LogFormat, "json"},
		{"LLMEnabled", c.LLMEnabled(), false},
		{"EmailEnabled", c.EmailEnabled(), false},
		{"SMSEnabled", c.SMSEnabled(), false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if c.Schedule != nil {
		t.Errorf("Schedule = %v, want nil (the policy's)", c.Schedule)
	}
}

func TestFromEnvValues(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{
		"DATABASE_URL":                 "postgres://u@db:5432/recoup",
		"PROMPTS_DIR":                  "/etc/recoup/prompts",
		"OPENAI_API_KEY":               "sk-test",
		"OPENAI_BASE_URL":              "http://127.0.0.1:8080/v1",
		"OPENAI_MODEL":                 "gpt-test",
		"OPENAI_TIMEOUT":               "45s",
		"SENDGRID_API_KEY":             "SG.x",
		"SENDGRID_BASE_URL":            "https://sendgrid.test",
		"TWILIO_ACCOUNT_SID":           "AC123",
		"TWILIO_AUTH_TOKEN":            "tok",
		"TWILIO_MESSAGING_SERVICE_SID": "MG123",
		"RECOUP_PUBLIC_BASE_URL":       "https://recoup.test/",
		"BILLING_WEBHOOK_URL":          "https://billing.test/hooks/recoup",
		"BILLING_WEBHOOK_SECRET":       testWebhookSecret,
		"PAYMENT_URL_TEMPLATE":         "https://pay.test/{invoice_id}",
		"RECOUP_SCHEDULE":              " 0s, 30s ,2m",
		"RECOUP_FINAL_WAIT":            "90s",
		"RECOUP_IGNORE_QUIET_HOURS":    "true",
		"LOG_LEVEL":                    "DEBUG",
		"LOG_FORMAT":                   "text",
	}))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if c.DatabaseURL != "postgres://u@db:5432/recoup" || c.PromptsDir != "/etc/recoup/prompts" {
		t.Errorf("DatabaseURL, PromptsDir = %q, %q", c.DatabaseURL, c.PromptsDir)
	}
	if !c.LLMEnabled() || c.LLM.BaseURL != "http://127.0.0.1:8080/v1" || c.LLM.Model != "gpt-test" || c.LLM.Timeout != 45*time.Second {
		t.Errorf("LLM = %+v", c.LLM)
	}
	if !c.EmailEnabled() || c.SendGrid.BaseURL != "https://sendgrid.test" {
		t.Errorf("SendGrid = %+v", c.SendGrid)
	}
	if c.Twilio.StatusCallbackURL != "https://recoup.test/v1/providers/twilio/status" || c.ReconcileWindow != 30*time.Minute {
		t.Errorf("Twilio status callback %q, reconcile window %s; want derived from RECOUP_PUBLIC_BASE_URL, 30m",
			c.Twilio.StatusCallbackURL, c.ReconcileWindow)
	}
	if !c.SMSEnabled() || c.Twilio.MessagingServiceSID != "MG123" {
		t.Errorf("Twilio = %+v", c.Twilio)
	}
	if c.Webhook.URL != "https://billing.test/hooks/recoup" || c.Webhook.Secret != testWebhookSecret {
		t.Errorf("Webhook = %+v", c.Webhook)
	}
	if c.PaymentURL != "https://pay.test/{invoice_id}" {
		t.Errorf("PaymentURL = %q", c.PaymentURL)
	}
	if want := []time.Duration{0, 30 * time.Second, 2 * time.Minute}; !slices.Equal(c.Schedule, want) {
		t.Errorf("Schedule = %v, want %v", c.Schedule, want)
	}
	if c.FinalWait != 90*time.Second || !c.IgnoreQuietHours {
		t.Errorf("FinalWait, IgnoreQuietHours = %v, %v", c.FinalWait, c.IgnoreQuietHours)
	}
	if c.LogLevel != slog.LevelDebug || c.LogFormat != "text" {
		t.Errorf("LogLevel, LogFormat = %v, %q", c.LogLevel, c.LogFormat)
	}
}

func TestFromEnvErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // the error must contain it
	}{
		{"schedule not increasing", map[string]string{"RECOUP_SCHEDULE": "0s,30s,30s"}, "RECOUP_SCHEDULE:"},
		{"schedule decreasing", map[string]string{"RECOUP_SCHEDULE": "1m,30s"}, "RECOUP_SCHEDULE:"},
		{"schedule garbage", map[string]string{"RECOUP_SCHEDULE": "soon,later"}, "RECOUP_SCHEDULE:"},
		{"schedule empty part", map[string]string{"RECOUP_SCHEDULE": "0s,,1m"}, "RECOUP_SCHEDULE:"},
		{"schedule negative", map[string]string{"RECOUP_SCHEDULE": "-1s,1m"}, "RECOUP_SCHEDULE:"},
		{"bad duration", map[string]string{"OPENAI_TIMEOUT": "twenty"}, "OPENAI_TIMEOUT:"},
		{"duration without unit", map[string]string{"SENDGRID_TIMEOUT": "10"}, "SENDGRID_TIMEOUT:"},
		{"negative duration", map[string]string{"RECOUP_FINAL_WAIT": "-1h"}, "RECOUP_FINAL_WAIT:"},
		{"bad bool", map[string]string{"RECOUP_IGNORE_QUIET_HOURS": "sometimes"}, "RECOUP_IGNORE_QUIET_HOURS:"},
		{"bad log level", map[string]string{"LOG_LEVEL": "verbose"}, `LOG_LEVEL: "verbose"`},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT:"},
		{"twilio without token", map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_FROM": "+14155552671", "RECOUP_PUBLIC_BASE_URL": "https://recoup.test"}, "TWILIO_AUTH_TOKEN:"},
		{"twilio without from", map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "RECOUP_PUBLIC_BASE_URL": "https://recoup.test"}, "TWILIO_FROM:"},
		{"reconcile window not positive", map[string]string{"RECOUP_RECONCILE_WINDOW": "0s"}, "RECOUP_RECONCILE_WINDOW:"},
		{"webhook without secret", map[string]string{"BILLING_WEBHOOK_URL": "https://billing.test/hook"}, "BILLING_WEBHOOK_SECRET:"},
		{"stripe executor without key", map[string]string{"RECOUP_STRIPE_EXECUTOR": "1"}, "STRIPE_API_KEY:"},
		{"non-http sendgrid URL", map[string]string{"SENDGRID_BASE_URL": "ftp://sendgrid.test"}, "SENDGRID_BASE_URL:"},
		{"sendgrid URL without host", map[string]string{"SENDGRID_BASE_URL": "https://"}, "SENDGRID_BASE_URL:"},
		{"relative openai URL", map[string]string{"OPENAI_BASE_URL": "localhost:8080"}, "OPENAI_BASE_URL:"},
		{"bad payment URL", map[string]string{"PAYMENT_URL_TEMPLATE": "/invoices/{invoice_id}"}, "PAYMENT_URL_TEMPLATE:"},
		{"bad unsubscribe URL", map[string]string{"UNSUBSCRIBE_URL_TEMPLATE": "mailto:stop@example.com"}, "UNSUBSCRIBE_URL_TEMPLATE:"},
		{"bad twilio status URL", map[string]string{"TWILIO_STATUS_CALLBACK_URL": "javascript:alert(1)"}, "TWILIO_STATUS_CALLBACK_URL:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.FromEnv(env(tt.env))
			if err == nil {
				t.Fatalf("FromEnv(%v) succeeded, want an error naming %s", tt.env, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FromEnv(%v) = %v, want it to name %s", tt.env, err, tt.want)
			}
			if n := len(strings.Split(err.Error(), "\n")); n != 1 {
				t.Errorf("FromEnv(%v) reported %d problems, want 1: %v", tt.env, n, err)
			}
		})
	}
}

func TestFromEnvInvalidScheduleIsDropped(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{"RECOUP_SCHEDULE": "0s,1m,30s"}))
	if err == nil {
		t.Fatal("non-increasing RECOUP_SCHEDULE accepted")
	}
	if c.Schedule != nil {
		t.Errorf("Schedule = %v after an error, want nil", c.Schedule)
	}
}

func TestFromEnvTwilioFromOrMessagingService(t *testing.T) {
	for _, e := range []map[string]string{
		{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+14155552671", "RECOUP_PUBLIC_BASE_URL": "https://recoup.test"},
		{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_MESSAGING_SERVICE_SID": "MG1", "TWILIO_STATUS_CALLBACK_URL": "https://recoup.test/cb"},
	} {
		if _, err := config.FromEnv(env(e)); err != nil {
			t.Errorf("FromEnv(%v): %v", e, err)
		}
	}
}

func TestFromEnvReportsSeveralErrorsTogether(t *testing.T) {
	_, err := config.FromEnv(env(map[string]string{
		"RECOUP_SCHEDULE":     "garbage",
		"OPENAI_TIMEOUT":      "x",
		"LOG_LEVEL":           "loud",
		"TWILIO_ACCOUNT_SID":  "AC1",
		"BILLING_WEBHOOK_URL": "https://billing.test/hook",
		"SENDGRID_BASE_URL":   "gopher://sendgrid.test",
	}))
	if err == nil {
		t.Fatal("FromEnv succeeded")
	}
	for _, name := range []string{"RECOUP_SCHEDULE:", "OPENAI_TIMEOUT:", "LOG_LEVEL:", "TWILIO_AUTH_TOKEN:", "TWILIO_FROM:",
		"BILLING_WEBHOOK_SECRET:", "SENDGRID_BASE_URL:"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error lacks %s:\n%v", name, err)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 7 {
		t.Errorf("want 7 joined errors, got %v", err)
	}
}

func TestFromEnvTrimsValues(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{"LOG_FORMAT": " text ", "OPENAI_MODEL": "  ", "EMAIL_FROM": " a@b.test "}))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if c.LogFormat != "text" || c.LLM.Model != "" || c.SendGrid.FromEmail != "a@b.test" {
		t.Errorf("LogFormat, Model, FromEmail = %q, %q, %q", c.LogFormat, c.LLM.Model, c.SendGrid.FromEmail)
	}
}

// Temporal Cloud (or any cluster): the SDK's standard variables give address, namespace,
// API key and TLS; worker tuning and per-provider send rates are read and checked.
func TestTemporalCloudAndTuning(t *testing.T) {
	for k, v := range map[string]string{
		"TEMPORAL_ADDRESS":   "recoup.a1b2c.tmprl.cloud:7233",
		"TEMPORAL_NAMESPACE": "recoup.a1b2c",
		"TEMPORAL_API_KEY":   "test-api-key",
	} {
		t.Setenv(k, v)
	}
	env := map[string]string{"WORKER_MAX_CONCURRENT_ACTIVITIES": "50", "EMAIL_SENDS_PER_SECOND": "10", "SMS_SENDS_PER_SECOND": "0.5",
		"WORKER_STICKY_CACHE_SIZE": "2000", "WORKER_POLLER_AUTOSCALING": "true", "RECOUP_WORKER_MEMORY": "512M"}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.TemporalOptions(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if opts.HostPort != "recoup.a1b2c.tmprl.cloud:7233" || opts.Namespace != "recoup.a1b2c" || opts.Credentials == nil {
		t.Fatalf("options = %+v", opts)
	}
	if opts.ConnectionOptions.TLS == nil {
		t.Fatal("an API key must turn TLS on")
	}
	if cfg.Tuning.MaxConcurrentActivities != 50 || cfg.Tuning.EmailsPerSecond != 10 || cfg.Tuning.SMSPerSecond != 0.5 ||
		cfg.Tuning.StickyCacheSize != 2000 || !cfg.Tuning.PollerAutoscaling || cfg.WorkerMemory != 512<<20 {
		t.Fatalf("tuning = %+v, worker memory %d", cfg.Tuning, cfg.WorkerMemory)
	}
	// The client does not gzip by default; TEMPORAL_GRPC_COMPRESSION=gzip restores the SDK's.
	if _, ok := opts.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionNone); !ok {
		t.Fatalf("default gRPC compression = %T, want none", opts.ConnectionOptions.GrpcCompression)
	}
	gz, err := config.FromEnv(func(k string) string { return map[string]string{"TEMPORAL_GRPC_COMPRESSION": "gzip"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if opts, err := gz.TemporalOptions(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	} else if _, ok := opts.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionGzip); !ok {
		t.Fatalf("TEMPORAL_GRPC_COMPRESSION=gzip gave %T", opts.ConnectionOptions.GrpcCompression)
	}
	// Pollers scale by default; false keeps the fixed number.
	for v, want := range map[string]bool{"": true, "false": false, "true": true} {
		cfg, err := config.FromEnv(func(k string) string { return map[string]string{"WORKER_POLLER_AUTOSCALING": v}[k] })
		if err != nil || cfg.Tuning.PollerAutoscaling != want {
			t.Fatalf("WORKER_POLLER_AUTOSCALING=%q: autoscaling %v (%v), want %v", v, cfg.Tuning.PollerAutoscaling, err, want)
		}
	}
	env = map[string]string{"SMS_SENDS_PER_SECOND": "fast", "WORKER_ACTIVITY_POLLERS": "-2", "WORKER_STICKY_CACHE_SIZE": "none", "WORKER_POLLER_AUTOSCALING": "maybe",
		"RECOUP_WORKER_MEMORY": "lots", "TEMPORAL_GRPC_COMPRESSION": "zstd"}
	_, err = config.FromEnv(func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), `TEMPORAL_GRPC_COMPRESSION: "zstd" is not none or gzip`) || !strings.Contains(err.Error(), "SMS_SENDS_PER_SECOND") || !strings.Contains(err.Error(), "WORKER_ACTIVITY_POLLERS") ||
		!strings.Contains(err.Error(), "WORKER_STICKY_CACHE_SIZE") || !strings.Contains(err.Error(), "WORKER_POLLER_AUTOSCALING") ||
		!strings.Contains(err.Error(), "RECOUP_WORKER_MEMORY") {
		t.Fatalf("error = %v, want every variable named", err)
	}
}

// RECOUP_DELIVERY=log calls no provider whatever credentials are set (an ALERT_EMAIL is then
// logged, not refused); a value other than live or log is refused naming the variable.
func TestDeliveryModeLogIgnoresProviderCredentials(t *testing.T) {
	creds := map[string]string{"SENDGRID_API_KEY": "SG.Xk2mP9qR7vT4wY6zA1bC3d.E5fG8hJ0kL2nM4pQ6sU8wX0zB2dF4hK6mN8qS0u",
		"TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef", "TWILIO_AUTH_TOKEN": "7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e",
		"TWILIO_FROM": "+14155550100", "ALERT_EMAIL": "oncall@shop.example", "RECOUP_DELIVERY": "log",
		"RECOUP_PUBLIC_BASE_URL": "https://recoup.shop.example"}
	c, err := config.FromEnv(env(creds))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if c.EmailEnabled() || c.SMSEnabled() || c.Delivery != config.DeliveryLog {
		t.Errorf("RECOUP_DELIVERY=log: email %v, sms %v, delivery %q; want no provider", c.EmailEnabled(), c.SMSEnabled(), c.Delivery)
	}
	creds["RECOUP_DELIVERY"] = "live"
	if c, err = config.FromEnv(env(creds)); err != nil || !c.EmailEnabled() || !c.SMSEnabled() {
		t.Errorf("RECOUP_DELIVERY=live: email %v, sms %v, %v; want both providers", c.EmailEnabled(), c.SMSEnabled(), err)
	}
	creds["RECOUP_DELIVERY"] = "sandbox"
	if _, err := config.FromEnv(env(creds)); err == nil || !strings.Contains(err.Error(), "RECOUP_DELIVERY") {
		t.Errorf("RECOUP_DELIVERY=sandbox: %v; want an error naming RECOUP_DELIVERY", err)
	}
}

// Only the worker sends SMS: with Twilio configured and no public base URL, the worker
// refuses to start (its sends could not be settled from Twilio's evidence), while ingress,
// support commands and jobs still run (found by review: an upgrade stopped them all).
func TestTwilioWithoutPublicBaseURLStopsOnlyTheWorker(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+14155552671",
		"WEBHOOK_SECRETS": "whsec_2x7u3qDzJqOFS59Su5RyWZP2Dc5po27CDxGJuVx//s0="}))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if err := c.Require(config.RoleWorker); err == nil || !strings.Contains(err.Error(), "RECOUP_PUBLIC_BASE_URL:") {
		t.Errorf("Require(worker) = %v, want an error naming RECOUP_PUBLIC_BASE_URL", err)
	}
	for _, role := range []config.Role{config.RoleServe, config.RoleSetup} {
		if err := c.Require(role); err != nil {
			t.Errorf("Require(%s) = %v, want nil", role, err)
		}
	}
}

// A local OpenAI-compatible server (Ollama, vLLM) takes no key: OPENAI_BASE_URL alone turns
// model decisions on, and the client is built without a key.
func TestLocalModelWithoutKey(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{
		"DATABASE_URL": "postgres://u@db:5432/recoup", "OPENAI_BASE_URL": "http://localhost:11434/v1", "OPENAI_MODEL": "llama3.1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.LLMEnabled() || c.LLM.APIKey != "" {
		t.Fatalf("LLMEnabled = %v with key %q, want model decisions on without a key", c.LLMEnabled(), c.LLM.APIKey)
	}
	if _, err := openai.New(c.LLM); err != nil {
		t.Fatalf("openai.New without a key but with a base URL: %v", err)
	}
	if _, err := openai.New(openai.Config{}); err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Fatalf("openai.New with neither key nor base URL: err = %v, want one naming OPENAI_API_KEY", err)
	}
}

// The codec server's sign-in settings: the audience defaults to the Web UI's client id, TLS
// settings that contradict each other are refused naming the variable, and the codec server
// needs a static token or an issuer.
func TestCodecServerSignInSettings(t *testing.T) {
	keys := "k1:8tXgTnqJDTkWgOEcgyNytokDmBuGFvCyC2aL1C9SW6A="
	c, err := config.FromEnv(env(map[string]string{"RECOUP_CODEC_KEYS": keys, "CODEC_OIDC_ISSUER": "https://login.example.com",
		"TEMPORAL_AUTH_CLIENT_ID": "ui-client", "CODEC_OIDC_ALLOWED_EMAILS": "ops@example.com, @support.example.com",
		"CODEC_TLS_SELF_SIGNED": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.CodecOIDC.Audience != "ui-client" || len(c.CodecOIDC.AllowedEmails) != 2 || !c.CodecTLSSelfSigned {
		t.Errorf("codec sign-in settings = %+v, self-signed %v", c.CodecOIDC, c.CodecTLSSelfSigned)
	}
	if err := c.Require(config.RoleCodecServer); err != nil {
		t.Errorf("an issuer without a static token: %v", err)
	}
	if c, _ := config.FromEnv(env(map[string]string{"RECOUP_CODEC_KEYS": keys})); c.Require(config.RoleCodecServer) == nil ||
		!strings.Contains(c.Require(config.RoleCodecServer).Error(), "CODEC_OIDC_ISSUER") {
		t.Errorf("neither token nor issuer: %v", c.Require(config.RoleCodecServer))
	}
	for name, m := range map[string]map[string]string{
		"CODEC_TLS_SELF_SIGNED": {"CODEC_TLS_SELF_SIGNED": "yes"},
		"CODEC_TLS_KEY":         {"CODEC_TLS_CERT": "/etc/codec.pem"},
	} {
		if _, err := config.FromEnv(env(m)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: err = %v, want one naming %s", m, err, name)
		}
	}
	if c, _ := config.FromEnv(env(nil)); c.Require(config.RoleDevOIDC) == nil || !strings.Contains(c.Require(config.RoleDevOIDC).Error(), "RECOUP_DEV_OIDC_PASSWORD") {
		t.Errorf("dev-oidc without a password: %v", c.Require(config.RoleDevOIDC))
	}
}
