package report

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup/internal/fakes"
)

// A page that cannot be built within its deadline is stopped and answered 503 with a message
// that says so, rather than running on. The deadline is set to zero here so that it has
// passed before the first query: no waiting.
func TestAPageOverItsDeadlineGets503SayingSo(t *testing.T) {
	st := fakes.MustStore(t)
	ro, err := ReadOnlyPool(context.Background(), st.Pool())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var timeout string
	if err := ro.QueryRow(context.Background(), `SHOW statement_timeout`).Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if timeout != "1min" {
		t.Errorf("the page's sessions have statement_timeout %q, want 1min (PageTimeout)", timeout)
	}
	defer func(d time.Duration) { pageTimeout = d }(pageTimeout)
	pageTimeout = 0
	const token = "report-test-token-deadline-4b1e"
	srv := httptest.NewServer(Handler(ro, token, time.Now, nil))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+PagePath, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "took longer than") {
		t.Errorf("a page past its deadline: %d %q, want 503 saying it took too long", resp.StatusCode, body)
	}
}
