package config

import (
	"fmt"
	"strings"
)

// HearsEvents reports whether this deployment can receive the delivery events of a
// channel's provider, the evidence that settles a send whose outcome is unknown: email when
// SENDGRID_WEBHOOK_PUBLIC_KEY is set (without it `starter serve` answers 404 to SendGrid's
// Event Webhook); sms when Twilio's status callbacks go to the URL `starter serve` verifies
// them as, RECOUP_PUBLIC_BASE_URL + TwilioStatusPath (any other URL is unverifiable: 404
// without a base URL, 401 on another host or path). Only a channel that hears its events may
// resend a message no event named after the reconcile window; otherwise it stays reconcile.
func (c Config) HearsEvents(channel string) bool {
	switch channel {
	case "email":
		return c.SendGridWebhookKey != ""
	case "sms":
		return c.PublicBaseURL != "" && strings.TrimRight(c.Twilio.StatusCallbackURL, "/") == c.PublicBaseURL+TwilioStatusPath
	}
	return false
}

// checkTwilioCallback refuses a TWILIO_STATUS_CALLBACK_URL that `starter serve` cannot
// verify although RECOUP_PUBLIC_BASE_URL is set: it checks X-Twilio-Signature against the
// base URL + the request's path, so every callback to another URL would be a 401 (which
// Twilio does not retry) and no evidence would ever arrive.
func (c Config) checkTwilioCallback() []error {
	if !c.SMSEnabled() || c.PublicBaseURL == "" || c.Twilio.StatusCallbackURL == "" || c.HearsEvents("sms") {
		return nil
	}
	return []error{fmt.Errorf("TWILIO_STATUS_CALLBACK_URL: must be RECOUP_PUBLIC_BASE_URL + %s (%s%s), the URL `starter serve` verifies Twilio's signature against; unset it to get that URL",
		TwilioStatusPath, c.PublicBaseURL, TwilioStatusPath)}
}
