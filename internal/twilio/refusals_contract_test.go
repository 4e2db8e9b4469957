package twilio_test

import (
	"context"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"
)

// The Twilio contract (internal/fakes/contracts/twilio.yaml) declares Body as an
// optional string without limit. Twilio refuses a Body over 1,600 characters (error 21617)
// and a message with neither Body nor MediaUrl (21602). The fake answers 201 to both, so a
// rendered SMS carrying a 10,000-character customer field "sends" in every test and is a
// ProviderRejected (channel excluded) in production.
func TestTwilioFakeRefusesABodyTwilioRefuses(t *testing.T) {
	for name, body := range map[string]string{"over 1600 chars": strings.Repeat("a", 2000), "empty": ""} {
		t.Run(name, func(t *testing.T) {
			tw := fakes.NewTwilio(t)
			m := message()
			m.Body = body
			if _, err := newSender(t, config(tw.URL)).Send(context.Background(), m); err == nil {
				t.Errorf("the contract fake accepted a Body Twilio refuses (%d chars)", len(body))
			}
		})
	}
}
