package config_test

import (
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/config"
)

func twilioEnv(extra map[string]string) map[string]string {
	m := map[string]string{"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "tok", "TWILIO_FROM": "+14155550100"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// Live SendGrid without SENDGRID_WEBHOOK_PUBLIC_KEY: `starter serve` answers 404 to the
// Event Webhook, no event can ever name a key, so the absence of one proves nothing: email
// does not hear its events (a send whose outcome is unknown stays reconcile, never resent).
// With the key it does.
func TestEmailHearsItsEventsOnlyWithTheWebhookKey(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{"SENDGRID_API_KEY": "SG.x"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HearsEvents("email") {
		t.Error("live SendGrid without SENDGRID_WEBHOOK_PUBLIC_KEY hears its events: reconcile would resend with no possible evidence")
	}
	c, err = config.FromEnv(env(map[string]string{"SENDGRID_API_KEY": "SG.x", "SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkw"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.HearsEvents("email") {
		t.Error("with SENDGRID_WEBHOOK_PUBLIC_KEY set, email does not hear its events")
	}
}

// TWILIO_STATUS_CALLBACK_URL without RECOUP_PUBLIC_BASE_URL: serve has no Twilio verifier
// and answers 404 to every callback: SMS does not hear its events. With the base URL the
// callback defaults to the verified URL, and SMS does.
func TestSMSHearsItsEventsOnlyAtTheVerifiedCallbackURL(t *testing.T) {
	c, err := config.FromEnv(env(twilioEnv(map[string]string{"TWILIO_STATUS_CALLBACK_URL": "https://hooks.example/v1/providers/twilio/status"})))
	if err != nil {
		t.Fatal(err)
	}
	if c.HearsEvents("sms") {
		t.Error("Twilio callbacks that starter serve cannot verify (no RECOUP_PUBLIC_BASE_URL) count as heard: SMS reconcile would resend blind")
	}
	c, err = config.FromEnv(env(twilioEnv(map[string]string{"RECOUP_PUBLIC_BASE_URL": "https://recoup.example/"})))
	if err != nil {
		t.Fatal(err)
	}
	if !c.HearsEvents("sms") || c.Twilio.StatusCallbackURL != "https://recoup.example"+config.TwilioStatusPath {
		t.Errorf("callback %q with RECOUP_PUBLIC_BASE_URL: hears %v; want the verified URL, heard", c.Twilio.StatusCallbackURL, c.HearsEvents("sms"))
	}
}

// A TWILIO_STATUS_CALLBACK_URL on another host or path than RECOUP_PUBLIC_BASE_URL +
// TwilioStatusPath would make every callback a 401 (serve verifies the signature against the
// base URL): refused, naming the URL expected.
func TestTwilioCallbackURLOtherThanTheVerifiedOneIsRefused(t *testing.T) {
	_, err := config.FromEnv(env(twilioEnv(map[string]string{"RECOUP_PUBLIC_BASE_URL": "https://recoup.example",
		"TWILIO_STATUS_CALLBACK_URL": "https://hooks.example/twilio/status"})))
	if err == nil || !strings.Contains(err.Error(), "TWILIO_STATUS_CALLBACK_URL") || !strings.Contains(err.Error(), "https://recoup.example"+config.TwilioStatusPath) {
		t.Fatalf("FromEnv = %v; want TWILIO_STATUS_CALLBACK_URL refused, naming the verified URL", err)
	}
	if _, err := config.FromEnv(env(twilioEnv(map[string]string{"RECOUP_PUBLIC_BASE_URL": "https://recoup.example",
		"TWILIO_STATUS_CALLBACK_URL": "https://recoup.example" + config.TwilioStatusPath}))); err != nil {
		t.Errorf("the verified URL itself: %v", err)
	}
}
