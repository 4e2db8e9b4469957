package llm_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/llm"
)

// mockURL returns the base URL of the OpenAI OpenAPI mock (/work/shared/tools/provider-mocks),
// skipping the test when it is not configured, or failing it when
// RECOUP_REQUIRE_PROVIDER_MOCKS=1.
func mockURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("OPENAI_MOCK_URL")
	if u == "" {
		if os.Getenv("RECOUP_REQUIRE_PROVIDER_MOCKS") == "1" {
			t.Fatal("OPENAI_MOCK_URL is not set and RECOUP_REQUIRE_PROVIDER_MOCKS=1")
		}
		t.Skip("OPENAI_MOCK_URL not set; start /work/shared/tools/provider-mocks and set OPENAI_MOCK_URL=http://127.0.0.1:4012")
	}
	return u
}

// TestContractOpenAIMock sends a real structured-output request through go-openai to the
// Prism mock built from OpenAI's own OpenAPI spec; Prism answers 4xx (and logs a
// violation) when the request does not match the spec.
func TestContractOpenAIMock(t *testing.T) {
	// The spec's server is https://api.openai.com/v1 and its paths (/chat/completions) are
	// relative to it; Prism serves those paths at its root. So the mock URL itself is the
	// base URL, with no /v1 suffix.
	c, err := llm.New(llm.Config{APIKey: "sk-contract-test", BaseURL: mockURL(t), Timeout: 10 * time.Second})
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
	if err := llm.DecodeStrict(resp.Content, &d); err == nil {
		t.Errorf("DecodeStrict(%q) succeeded; the mock's placeholder should not decode", resp.Content)
	}
}
