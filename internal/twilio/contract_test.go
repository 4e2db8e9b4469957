package twilio_test

import (
	"context"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"

	"github.com/recoup-dunning/recoup/internal/twilio"
)

// TestContractTwilio sends real messages to the Prism mock built from Twilio's own OpenAPI
// spec, which answers 4xx to any request that violates the spec.
func TestContractTwilio(t *testing.T) {
	base := fakes.ProviderMock(t, "TWILIO_MOCK_URL")
	tests := []struct {
		name   string
		mutate func(*twilio.Config)
	}{
		{"From", func(*twilio.Config) {}},
		{"MessagingServiceSID", func(c *twilio.Config) { c.From, c.MessagingServiceSID = "", serviceSID }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(base)
			cfg.StatusCallbackURL = "https://hooks.recoup.example/twilio/status"
			tt.mutate(&cfg)
			got, err := newSender(t, cfg).Send(context.Background(), message())
			if err != nil {
				t.Fatalf("Send to the Twilio contract mock: %v", err)
			}
			if !strings.HasPrefix(got, "SM") {
				t.Errorf("SID = %q, want an SM... message SID", got)
			}
		})
	}
}
