package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.temporal.io/api/serviceerror"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// ingressUnderTest runs `starter serve` in-process on a loopback port against the harness's
// PostgreSQL schema and Temporal client.
type ingressUnderTest struct {
	url  string
	stop func()
}

func startIngress(t *testing.T, h *workertest.Harness) *ingressUnderTest {
	t.Helper()
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.WebhookSecret = []string{testSecret}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, &deps{cfg: cfg, st: h.Store, tc: h.Client}, ln, io.Discard) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &ingressUnderTest{url: "http://" + ln.Addr().String(), stop: stop}
}

func (g *ingressUnderTest) post(t *testing.T, v map[string]any) int {
	t.Helper()
	body, _ := json.Marshal(v)
	wh, _ := standardwebhooks.NewWebhook(testSecret)
	now := time.Now()
	sig, err := wh.Sign("msg-"+v["event_id"].(string), now, body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, g.url+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "msg-"+v["event_id"].(string))
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST: %v", err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// undelivered counts the events still to be delivered; an event held back until its
// invoice's run exists (parked) is not waiting for the relay.
func undelivered(t *testing.T, h *workertest.Harness) int {
	t.Helper()
	var n int
	if err := h.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events WHERE delivered_at IS NULL AND parked_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDuplicateStormOverHTTP(t *testing.T) {
	h := workertest.Start(t, workertest.Options{})
	g := startIngress(t, h)
	ev := workertest.Failed("evt_storm", "inv_storm", "cus_storm", time.Now().UTC())
	codes := make([]int, 50)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = g.post(t, ev) }()
	}
	wg.Wait()
	accepted, duplicates := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusAccepted:
			accepted++
		case http.StatusOK:
			duplicates++
		}
	}
	if accepted != 1 || duplicates != 49 {
		t.Fatalf("answers %v: want one 202 and 49 200s", codes)
	}
	var rows int
	if err := h.Store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events WHERE invoice_id = 'inv_storm'`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("event log rows = %d, %v; want 1", rows, err)
	}
	h.Eventually("the first message", func() bool { return h.Messages("inv_storm") == 1 })
	if n := h.Mail.AcceptedTotal(); n != 1 {
		t.Fatalf("provider accepted %d messages, want 1", n)
	}
	st := h.State("inv_storm")
	if st.Failures != 1 || len(st.Decisions) != 1 {
		t.Fatalf("state = %+v, want one failure and one decision", st)
	}
}

func TestRecoveredBeforeFailedStartsNoDunning(t *testing.T) {
	h := workertest.Start(t, workertest.Options{})
	g := startIngress(t, h)
	now := time.Now().UTC()
	// The recovery (paid at 10:05) arrives before the failure (10:00) it settles.
	if c := g.post(t, map[string]any{"type": "payment.recovered", "event_id": "evt_oo_paid", "invoice_id": "inv_oo",
		"occurred_at": now.Add(5 * time.Minute).Format(time.RFC3339Nano)}); c != http.StatusAccepted {
		t.Fatalf("recovered: %d", c)
	}
	if c := g.post(t, workertest.Failed("evt_oo_failed", "inv_oo", "cus_oo", now)); c != http.StatusAccepted {
		t.Fatalf("failed: %d", c)
	}
	h.Eventually("both events delivered", func() bool { return undelivered(t, h) == 0 })
	_, err := h.Client.DescribeWorkflowExecution(context.Background(), recoup.WorkflowID("inv_oo"), "")
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		t.Fatalf("describe = %v; want no dunning run for a settled invoice", err)
	}
	if h.Mail.AcceptedTotal() != 0 {
		t.Fatal("a message was sent for a settled invoice")
	}
}

// Events accepted while Temporal is down, by an ingress that is then restarted, are
// delivered once Temporal is back: exactly once, nothing lost.
func TestAcceptedWhileTemporalDownDeliveredAfterRestarts(t *testing.T) {
	h := workertest.Start(t, workertest.Options{DBFile: filepath.Join(t.TempDir(), "temporal.db")})
	h.StopTemporal()
	g := startIngress(t, h)
	now := time.Now().UTC()
	for i, inv := range []string{"inv_down_1", "inv_down_2"} {
		ev := workertest.Failed("evt_down_"+strconv.Itoa(i), inv, "cus_down", now)
		if c := g.post(t, ev); c != http.StatusAccepted {
			t.Fatalf("accept while Temporal is down: %d, want 202", c)
		}
	}
	if n := undelivered(t, h); n != 2 {
		t.Fatalf("undelivered = %d, want 2", n)
	}
	g.stop() // the starter restarts before it could deliver anything
	h.StartTemporal()
	startIngress(t, h) // a new process: its relay finds the recorded events
	for _, inv := range []string{"inv_down_1", "inv_down_2"} {
		h.Eventually("the first message of "+inv, func() bool { return h.Messages(inv) == 1 })
		if n := h.Mail.Accepted(recoup.WorkflowID(inv) + "/step-1/email"); n != 1 {
			t.Fatalf("%s: provider accepted %d messages, want 1", inv, n)
		}
	}
	if n := undelivered(t, h); n != 0 {
		t.Fatalf("undelivered = %d after recovery, want 0", n)
	}
}
