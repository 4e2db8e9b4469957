package sms_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/sms"
)

// mockURL returns the URL of the provider's OpenAPI mock (see
// /work/shared/tools/provider-mocks), skipping the test when it is not configured unless
// RECOUP_REQUIRE_PROVIDER_MOCKS=1.
func mockURL(t *testing.T, env string) string {
	t.Helper()
	u := os.Getenv(env)
	if u == "" {
		if os.Getenv("RECOUP_REQUIRE_PROVIDER_MOCKS") == "1" {
			t.Fatalf("%s is not set and RECOUP_REQUIRE_PROVIDER_MOCKS=1", env)
		}
		t.Skipf("%s not set; start the mocks with provider-mocks start and set %s=http://127.0.0.1:4011", env, env)
	}
	return u
}

// TestContractTwilio sends real messages to the Prism mock built from Twilio's own OpenAPI
// spec, which answers 4xx to any request that violates the spec.
func TestContractTwilio(t *testing.T) {
	base := mockURL(t, "TWILIO_MOCK_URL")
	tests := []struct {
		name   string
		mutate func(*sms.Config)
	}{
		{"From", func(*sms.Config) {}},
		{"MessagingServiceSID", func(c *sms.Config) { c.From, c.MessagingServiceSID = "", serviceSID }},
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
