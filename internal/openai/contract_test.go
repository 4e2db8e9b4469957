package openai_test

import (
	"context"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"

	"github.com/recoup-dunning/recoup/internal/openai"
)

// TestContractOpenAIMock sends a real structured-output request through go-openai to the
// Prism mock built from OpenAI's own OpenAPI spec; Prism answers 4xx (and logs a
// violation) when the request does not match the spec.
func TestContractOpenAIMock(t *testing.T) {
	// The spec's server is https://api.openai.com/v1 and its paths (/chat/completions) are
	// relative to it; Prism serves those paths at its root. So the mock URL itself is the
	// base URL, with no /v1 suffix.
	c, err := openai.New(openai.Config{APIKey: "sk-contract-test", BaseURL: fakes.ProviderMock(t, "OPENAI_MOCK_URL"), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Complete(context.Background(), testRequest())
	if err != nil {
		t.Fatalf("mock rejected the request (see `provider-mocks violations`): %v", err)
	}
	if resp.Content == "" {
		t.Fatalf("no content in %+v", resp)
	}
	// The mock answers placeholder content (the literal "string"), which does not follow the
	// schema: callers see DecodeStrict fail and fall back.
	var d decision
	if err := openai.DecodeStrict(resp.Content, &d); err == nil {
		t.Errorf("DecodeStrict(%q) succeeded; the mock's placeholder should not decode", resp.Content)
	}
}
