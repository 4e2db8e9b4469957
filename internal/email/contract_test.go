package email_test

import (
	"context"
	"os"
	"testing"

	"github.com/recoup-dunning/recoup/internal/email"
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
		t.Skipf("%s not set; start the mocks with provider-mocks start and set %s=http://127.0.0.1:4010", env, env)
	}
	return u
}

// TestContractSendGrid sends one real message to the Prism mock built from SendGrid's own
// OpenAPI spec, which answers 4xx to any request that violates the spec.
func TestContractSendGrid(t *testing.T) {
	base := mockURL(t, "SENDGRID_MOCK_URL")
	s, err := email.New(email.Config{
		APIKey:    "SG.contract-test-key",
		BaseURL:   base,
		FromEmail: "billing@recoup.example",
		FromName:  "Recoup Billing",
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := s.Send(context.Background(), message()); err != nil {
		t.Fatalf("Send to the SendGrid contract mock: %v", err)
	}
}
