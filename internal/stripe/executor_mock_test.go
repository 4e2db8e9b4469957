package stripe_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/stripe"
)

// stripeMockVersion is the stripe-mock (Stripe's official API mock) the tests run:
// `go install github.com/stripe/stripe-mock@v0.203.0` (.ci/run installs it).
const stripeMockVersion = "v0.203.0"

// startStripeMock starts stripe-mock on a free loopback port and returns its URL. Missing,
// the test is skipped — or fails when RECOUP_REQUIRE_STRIPE_MOCK=1 or
// RECOUP_REQUIRE_PROVIDER_MOCKS=1, as in CI.
func startStripeMock(t *testing.T) string {
	t.Helper()
	fakes.RequireServices(t)
	bin, err := exec.LookPath("stripe-mock")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(string(trimNL(gopath)), "bin", "stripe-mock")
		if _, serr := os.Stat(bin); serr != nil {
			msg := "stripe-mock is not installed: go install github.com/stripe/stripe-mock@" + stripeMockVersion
			if os.Getenv("RECOUP_REQUIRE_STRIPE_MOCK") == "1" || os.Getenv("RECOUP_REQUIRE_PROVIDER_MOCKS") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "-http-addr", fmt.Sprintf("127.0.0.1:%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	fakes.Eventually(t, func() bool {
		resp, err := http.Get(url + "/v1/invoices/in_123")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err == nil
	}, "stripe-mock to listen")
	return url
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Against Stripe's official mock, stripe-go's invoice pay request is one the API accepts.
func TestExecutorPaysAgainstStripeMock(t *testing.T) {
	url := startStripeMock(t)
	ex, err := stripe.NewExecutor(stripe.ExecutorConfig{APIKey: "sk_test_123", BaseURL: url})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Pay(context.Background(), "in_123", 1); err != nil {
		t.Fatalf("stripe-mock refused the pay request: %v", err)
	}
}
