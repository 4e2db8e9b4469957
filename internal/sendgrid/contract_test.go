package sendgrid_test

import (
	"context"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"

	"github.com/recoup-dunning/recoup/internal/sendgrid"
)

// TestContractSendGrid sends one real message to the Prism mock built from SendGrid's own
// OpenAPI spec, which answers 4xx to any request that violates the spec.
func TestContractSendGrid(t *testing.T) {
	base := fakes.ProviderMock(t, "SENDGRID_MOCK_URL")
	s, err := sendgrid.New(sendgrid.Config{
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
