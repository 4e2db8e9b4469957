package chaos_test

// Chaos scenarios for outages of the services Recoup depends on. They run with
// RECOUP_CHAOS=1 (`make chaos`, and CI); each prints a one-line figure.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/ingress"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

func chaosOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("RECOUP_CHAOS") != "1" {
		t.Skip("a chaos scenario: run it with `make chaos` (RECOUP_CHAOS=1)")
	}
}

func sentFirst(t *testing.T, st *postgres.Store) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM sends WHERE step = 1 AND status = 'sent'`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// Temporal restarted in the middle of 200 runs: events keep being accepted into the log
// while it is down; after it is back every run sends its first message, once.
func TestTemporalRestartedMidway(t *testing.T) {
	chaosOnly(t)
	const runs = 200
	h := workertest.Start(t, workertest.Options{DBFile: filepath.Join(t.TempDir(), "temporal.db"), Schedule: []time.Duration{0, 24 * time.Hour}})
	ctx := context.Background()
	event := func(i int) []byte {
		raw, _ := json.Marshal(workertest.Failed(fmt.Sprintf("evt_tr_%d", i), fmt.Sprintf("inv_tr_%d", i), fmt.Sprintf("cus_tr_%d", i%50), time.Now().UTC()))
		return raw
	}
	for i := range runs / 2 {
		if _, err := h.Ingest.Accept(ctx, event(i), "chaos"); err != nil {
			t.Fatal(err)
		}
	}
	h.StopTemporal()
	// The ingress records what arrives while Temporal is down (its relay delivers later).
	for i := runs / 2; i < runs; i++ {
		if _, _, err := h.Ingest.Record(ctx, event(i), "chaos"); err != nil {
			t.Fatal(err)
		}
	}
	var recorded int
	if err := h.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE source = 'chaos'`).Scan(&recorded); err != nil || recorded != runs {
		t.Fatalf("event log holds %d events, want %d", recorded, runs)
	}
	h.StartTemporal()
	relayCtx, stop := context.WithCancel(ctx)
	defer stop()
	relay := eventlog.NewRelay(h.Ingest, nil, nil)
	go relay.Run(relayCtx)
	h.Eventually("every first message", func() bool { return sentFirst(t, h.Store) == runs })
	dups := 0
	for i := range runs {
		if c := h.Mail.Accepted(recoup.WorkflowID(fmt.Sprintf("inv_tr_%d", i)) + "/step-1/email"); c != 1 {
			dups++
		}
	}
	line := fmt.Sprintf("temporal-restart: %d runs, %d accepted while down, 0 lost, %d duplicates", runs, runs/2, dups)
	t.Log(line)
	fmt.Println(line)
	if dups != 0 {
		t.Fatal(line)
	}
}

// proxy is a TCP proxy in front of PostgreSQL that can cut every connection.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go p.serve()
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, u); u.Close(); c.Close() }()
	}
}

// setCut drops every connection and refuses new ones (true), or lets them through again.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

// PostgreSQL cut: a proxy drops every connection for a while. The ingress answers 503
// (nothing half-accepted), activities retry, and everything completes once it heals.
func TestPostgresCut(t *testing.T) {
	chaosOnly(t)
	outage := 20 * time.Second // the figure; CHAOS_PG_OUTAGE changes it
	if v, err := time.ParseDuration(os.Getenv("CHAOS_PG_OUTAGE")); err == nil {
		outage = v
	}
	direct := fakes.MustStore(t)
	var schema string
	if err := direct.Pool().QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, "127.0.0.1:5432")
	url := "postgres://postgres@" + px.ln.Addr().String() + "/test?sslmode=disable&connect_timeout=2"
	viaProxy, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour}, Configure: func(a *activities.Activities) { a.Dunning.Store, a.Detector.Store = viaProxy, viaProxy }})
	in := &eventlog.Ingestor{Store: viaProxy, Temporal: h.Client}
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	srv, err := ingress.New(ingress.Options{Ingest: in, Secrets: []string{secret}, Relay: eventlog.NewRelay(in, nil, nil),
		Metrics: observability.NewIngressMetrics(observability.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := &http.Server{Handler: srv.Handler()}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	relayCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go eventlog.NewRelay(in, nil, nil).Run(relayCtx)

	wh, _ := standardwebhooks.NewWebhook(secret)
	post := func(i int) int {
		body, _ := json.Marshal(workertest.Failed(fmt.Sprintf("evt_pg_%d", i), fmt.Sprintf("inv_pg_%d", i), fmt.Sprintf("cus_pg_%d", i), time.Now().UTC()))
		now := time.Now()
		sig, _ := wh.Sign("m"+strconv.Itoa(i), now, body)
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", "m"+strconv.Itoa(i))
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const runs = 20
	for i := range runs / 2 {
		if c := post(i); c != http.StatusAccepted {
			t.Fatalf("before the cut: %d", c)
		}
	}
	px.setCut(true)
	cutAt := time.Now()
	refused := 0
	for i := runs / 2; i < runs; i++ {
		if c := post(i); c == http.StatusServiceUnavailable {
			refused++
		} else {
			t.Errorf("during the cut event %d was answered %d, want 503", i, c)
		}
	}
	var during int
	if err := direct.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&during); err != nil || during != runs/2 {
		t.Fatalf("the log holds %d events after the cut, want %d (nothing half-accepted)", during, runs/2)
	}
	time.Sleep(time.Until(cutAt.Add(outage))) // the outage itself, not synchronisation
	px.setCut(false)
	for i := runs / 2; i < runs; i++ { // the senders retry after their 503
		if c := post(i); c != http.StatusAccepted {
			t.Fatalf("after the cut event %d: %d", i, c)
		}
	}
	h.Eventually("every first message", func() bool { return sentFirst(t, direct) == runs })
	dups := 0
	for i := range runs {
		if c := h.Mail.Accepted(recoup.WorkflowID(fmt.Sprintf("inv_pg_%d", i)) + "/step-1/email"); c != 1 {
			dups++
		}
	}
	line := fmt.Sprintf("postgres-cut: %s outage, %d events refused with 503 and resent, %d runs completed, 0 lost, %d duplicates", outage, refused, runs, dups)
	t.Log(line)
	fmt.Println(line)
	if dups != 0 {
		t.Fatal(line)
	}
}
