package main

// End-to-end tests: the real worker (workflow + activities) against a real Temporal dev
// server (the pinned CLI, built by `make temporal`), real PostgreSQL, the real ingest path
// the starter uses, and the real SendGrid client talking to a fake that counts messages per
// idempotency key. With RECOUP_RECORD_HISTORIES=1 they also write the runs' histories to
// workflows/testdata for the replay tests.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/email"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/ingest"
	"github.com/recoup-dunning/recoup/internal/llm"
	"github.com/recoup-dunning/recoup/internal/sms"
	"github.com/recoup-dunning/recoup/internal/store"
	"github.com/recoup-dunning/recoup/internal/templates"
	"github.com/recoup-dunning/recoup/internal/testutil"
)

// SearchAttributeArgs registers Recoup's search attributes on a dev server.
var SearchAttributeArgs = []string{
	"--search-attribute", recoup.SearchAttrCustomerID + "=Keyword",
	"--search-attribute", recoup.SearchAttrInvoiceID + "=Keyword",
	"--search-attribute", recoup.SearchAttrDunningStatus + "=Keyword",
	"--search-attribute", recoup.SearchAttrDunningStep + "=Int",
	"--search-attribute", recoup.SearchAttrLastChannel + "=Keyword",
}

// mailbox is a SendGrid fake counting accepted messages per idempotency key.
type mailbox struct {
	mu   sync.Mutex
	keys map[string]int
}

func (m *mailbox) handler(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Personalizations []struct {
			CustomArgs map[string]string `json:"custom_args"`
		} `json:"personalizations"`
	}
	if r.URL.Path != "/v3/mail/send" || json.NewDecoder(r.Body).Decode(&body) != nil || len(body.Personalizations) != 1 {
		http.Error(w, `{"errors":[{"message":"bad request"}]}`, http.StatusBadRequest)
		return
	}
	key := body.Personalizations[0].CustomArgs["idempotency_key"]
	m.mu.Lock()
	m.keys[key]++
	m.mu.Unlock()
	w.Header().Set("X-Message-Id", "sg-"+key)
	w.WriteHeader(http.StatusAccepted)
}

func (m *mailbox) count(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[key]
}

type e2e struct {
	t   *testing.T
	c   client.Client
	st  *store.Store
	in  *ingest.Ingestor
	box *mailbox
}

func startE2E(t *testing.T, schedule []time.Duration, finalWait time.Duration, configure ...func(*activities.Activities)) *e2e {
	t.Helper()
	ctx := context.Background()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  testutil.TemporalCLI(t),
		ExtraArgs:     append([]string{"--headless"}, SearchAttributeArgs...),
		LogLevel:      "error",
		ClientOptions: &client.Options{Logger: quietLogger{}},
	})
	if err != nil {
		t.Fatalf("start the Temporal dev server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	st := testutil.MustStore(t)
	box := &mailbox{keys: map[string]int{}}
	fake := httptest.NewServer(http.HandlerFunc(box.handler))
	t.Cleanup(fake.Close)
	sender, err := email.New(email.Config{APIKey: "SG.e2e", BaseURL: fake.URL, FromEmail: "billing@shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.Activities{Store: st, Prompts: func() *templates.Set { return set }, Email: sender,
		Schedule: schedule, FinalWait: finalWait, IgnoreQuietHours: true,
		PaymentURL: "https://pay.example/{invoice_id}", UnsubscribeURL: "https://pay.example/u/{customer_id}"}
	for _, c := range configure {
		c(acts)
	}
	w := New(srv.Client(), acts)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return &e2e{t: t, c: srv.Client(), st: st, in: &ingest.Ingestor{Store: st, Temporal: srv.Client()}, box: box}
}

func (e *e2e) event(v map[string]any) ingest.Result {
	e.t.Helper()
	raw, _ := json.Marshal(v)
	res, err := e.in.Accept(context.Background(), raw, "test")
	if err != nil {
		e.t.Fatalf("event %v: %v", v["event_id"], err)
	}
	return res
}

func (e *e2e) state(invoice string) recoup.State {
	e.t.Helper()
	v, err := e.c.QueryWorkflow(context.Background(), recoup.WorkflowID(invoice), "", recoup.QueryStatus)
	if err != nil {
		e.t.Fatalf("query: %v", err)
	}
	var s recoup.State
	if err := v.Get(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// eventually polls cond until it holds or the deadline passes.
func (e *e2e) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *e2e) result(invoice string) recoup.DunningResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var res recoup.DunningResult
	if err := e.c.GetWorkflow(ctx, recoup.WorkflowID(invoice), "").Get(ctx, &res); err != nil {
		e.t.Fatalf("run %s: %v", invoice, err)
	}
	return res
}

// record writes the run's history for the replay tests when RECOUP_RECORD_HISTORIES=1.
func (e *e2e) record(invoice, name string) {
	if os.Getenv("RECOUP_RECORD_HISTORIES") != "1" {
		return
	}
	ctx := context.Background()
	it := e.c.GetWorkflowHistory(ctx, recoup.WorkflowID(invoice), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			e.t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(testutil.RepoRoot(), "workflows", "testdata", name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("recorded %s", path)
}

func customer(id string) map[string]any {
	return map[string]any{"name": "Ada Lovelace", "email": id + "@example.com", "phone": "+14155550123",
		"locale": "en-US", "time_zone": "America/New_York", "plan": "pro", "email_consent": true, "sms_consent": true}
}

func failed(eventID, invoice, cust string, at time.Time) map[string]any {
	return map[string]any{"type": "payment.failed", "event_id": eventID, "invoice_id": invoice, "customer_id": cust,
		"amount_minor": 4900, "currency": "USD", "failure_code": "card_declined", "attempt_id": "att_1",
		"occurred_at": at.Format(time.RFC3339Nano), "customer": customer(cust)}
}

func TestDuplicateDeliveriesMakeOneRunAndOneMessage(t *testing.T) {
	e := startE2E(t, []time.Duration{0, time.Hour}, time.Hour)
	now := time.Now().UTC()
	ev := failed("evt_e2e_1", "inv_e2e_1", "cus_e2e_1", now)
	runIDs := make([]string, 5)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, _ := json.Marshal(ev)
			if _, err := e.in.Accept(context.Background(), raw, "test"); err != nil {
				t.Errorf("delivery %d: %v", i, err)
			}
			d, err := e.c.DescribeWorkflowExecution(context.Background(), recoup.WorkflowID("inv_e2e_1"), "")
			if err != nil {
				t.Errorf("describe: %v", err)
				return
			}
			runIDs[i] = d.WorkflowExecutionInfo.Execution.RunId
		}()
	}
	wg.Wait()
	for _, id := range runIDs[1:] {
		if id != runIDs[0] {
			t.Fatalf("run ids %v: more than one run for the invoice", runIDs)
		}
	}
	key := recoup.WorkflowID("inv_e2e_1") + "/step-1/email"
	e.eventually("the first message", func() bool { return len(e.state("inv_e2e_1").Messages) == 1 })
	if n := e.box.count(key); n != 1 {
		t.Fatalf("provider accepted %d messages for %s, want 1", n, key)
	}
	// A late duplicate of the same event changes nothing.
	if res := e.event(ev); !res.Duplicate {
		t.Fatalf("late duplicate: %+v", res)
	}
	e.event(map[string]any{"type": "payment.retry_failed", "event_id": "evt_e2e_r1", "invoice_id": "inv_e2e_1",
		"attempt_id": "att_2", "failure_code": "insufficient_funds", "occurred_at": now.Add(time.Minute).Format(time.RFC3339Nano)})
	e.event(map[string]any{"type": "payment.retry_succeeded", "event_id": "evt_e2e_r2", "invoice_id": "inv_e2e_1",
		"attempt_id": "att_3", "occurred_at": now.Add(2 * time.Minute).Format(time.RFC3339Nano)})
	if res := e.result("inv_e2e_1"); res.Status != recoup.StatusRecovered || res.Steps != 1 {
		t.Fatalf("result = %+v, want recovered after step 1", res)
	}
	if n := e.box.count(key); n != 1 {
		t.Fatalf("provider accepted %d messages, want 1", n)
	}
	st := e.state("inv_e2e_1")
	if st.Failures != 2 || st.Status != recoup.StatusRecovered {
		t.Fatalf("state = %+v", st)
	}
	var outcome string
	if err := e.st.Pool().QueryRow(context.Background(), `SELECT outcome FROM dunning_runs WHERE workflow_id = $1`,
		recoup.WorkflowID("inv_e2e_1")).Scan(&outcome); err != nil || outcome != "recovered" {
		t.Fatalf("stored outcome = %q, %v", outcome, err)
	}
	// Support staff find the run by its search attributes.
	e.eventually("the run in a CustomerId list filter", func() bool {
		resp, err := e.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: "CustomerId = 'cus_e2e_1' AND DunningStatus = 'recovered' AND DunningStep = 1"})
		return err == nil && len(resp.Executions) == 1
	})
	e.record("inv_e2e_1", "recovered")
}

func TestRelayDeliversAcceptedEvents(t *testing.T) {
	e := startE2E(t, []time.Duration{0, time.Hour}, time.Hour)
	// An event accepted while Temporal was unreachable: recorded, not delivered.
	raw, _ := json.Marshal(failed("evt_e2e_relay", "inv_e2e_6", "cus_e2e_6", time.Now().UTC()))
	ev, err := events.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RecordEvent(context.Background(), store.Event{EventID: ev.EventID, Type: ev.Type, Source: "test",
		InvoiceID: ev.InvoiceID, CustomerID: ev.CustomerID, OccurredAt: ev.OccurredAt, Body: ev.Raw,
		Customer: &store.Customer{CustomerID: ev.CustomerID, Email: ev.Customer.Email, EmailConsentSet: ev.Customer.EmailConsent, UpdatedAt: ev.OccurredAt}}); err != nil {
		t.Fatal(err)
	}
	n, err := e.in.DeliverPending(context.Background(), 100)
	if err != nil || n != 1 {
		t.Fatalf("delivered %d, %v; want 1", n, err)
	}
	e.eventually("the first message", func() bool { return len(e.state("inv_e2e_6").Messages) == 1 })
	if n, err := e.in.DeliverPending(context.Background(), 100); err != nil || n != 0 {
		t.Fatalf("second relay delivered %d, %v; want nothing", n, err)
	}
}

func TestScheduleRunsToExhaustionWithOptOut(t *testing.T) {
	e := startE2E(t, []time.Duration{0, 4 * time.Second, 8 * time.Second}, 2*time.Second)
	now := time.Now().UTC()
	e.event(failed("evt_e2e_x1", "inv_e2e_2", "cus_e2e_2", now))
	e.eventually("the first message", func() bool { return len(e.state("inv_e2e_2").Messages) == 1 })
	e.event(map[string]any{"type": "dunning.opt_out", "event_id": "evt_e2e_x2", "invoice_id": "inv_e2e_2", "channel": "sms",
		"occurred_at": now.Add(time.Second).Format(time.RFC3339Nano)})
	e.event(map[string]any{"type": "dunning.opt_out", "event_id": "evt_e2e_x2", "invoice_id": "inv_e2e_2", "channel": "sms",
		"occurred_at": now.Add(time.Second).Format(time.RFC3339Nano)})
	res := e.result("inv_e2e_2")
	if res.Status != recoup.StatusExhausted || res.Steps != 3 {
		t.Fatalf("result = %+v, want exhausted after 3 steps", res)
	}
	st := e.state("inv_e2e_2")
	if len(st.Messages) != 3 {
		t.Fatalf("messages = %+v", st.Messages)
	}
	for _, m := range st.Messages {
		// Rules: step 2 prefers SMS, but the customer opted out of SMS: email instead. The
		// worker has no Twilio credentials, so an SMS would have been "logged".
		if m.Channel != recoup.ChannelEmail || m.Delivery != store.SendSent {
			t.Fatalf("message %+v, want every step by email, sent", m)
		}
		if n := e.box.count(m.IdempotencyKey); n != 1 {
			t.Fatalf("%s accepted %d times", m.IdempotencyKey, n)
		}
	}
	e.record("inv_e2e_2", "exhausted")
}

func TestPauseResumeAndCancel(t *testing.T) {
	e := startE2E(t, []time.Duration{0, time.Hour}, time.Hour)
	now := time.Now().UTC()
	e.event(failed("evt_e2e_p1", "inv_e2e_3", "cus_e2e_3", now))
	e.eventually("the first message", func() bool { return len(e.state("inv_e2e_3").Messages) == 1 })
	e.event(map[string]any{"type": "dunning.pause", "event_id": "evt_e2e_p2", "invoice_id": "inv_e2e_3", "reason": "disputed",
		"occurred_at": now.Format(time.RFC3339Nano)})
	e.eventually("paused", func() bool { return e.state("inv_e2e_3").Status == recoup.StatusPaused })
	e.event(map[string]any{"type": "dunning.resume", "event_id": "evt_e2e_p3", "invoice_id": "inv_e2e_3",
		"occurred_at": now.Format(time.RFC3339Nano)})
	e.eventually("active", func() bool { return e.state("inv_e2e_3").Status == recoup.StatusActive })
	e.event(map[string]any{"type": "dunning.cancel", "event_id": "evt_e2e_p4", "invoice_id": "inv_e2e_3", "reason": "written off",
		"occurred_at": now.Format(time.RFC3339Nano)})
	if res := e.result("inv_e2e_3"); res.Status != recoup.StatusCanceled || res.Reason != "written off" {
		t.Fatalf("result = %+v", res)
	}
	// An event for the ended run is recorded, not an error, and starts nothing.
	res := e.event(failed("evt_e2e_p5", "inv_e2e_3", "cus_e2e_3", now.Add(time.Hour)))
	if !res.Delivered || res.Duplicate {
		t.Fatalf("event after the end: %+v", res)
	}
	d, err := e.c.DescribeWorkflowExecution(context.Background(), recoup.WorkflowID("inv_e2e_3"), "")
	if err != nil || d.WorkflowExecutionInfo.Status != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("describe = %v, %v; want the canceled run still the latest, completed", d, err)
	}
	e.record("inv_e2e_3", "paused_canceled")
}

func TestUnknownCustomerFailsTheRun(t *testing.T) {
	e := startE2E(t, []time.Duration{0}, time.Hour)
	ev := failed("evt_e2e_u1", "inv_e2e_4", "cus_e2e_nobody", time.Now().UTC())
	delete(ev, "customer")
	e.event(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := e.c.GetWorkflow(ctx, recoup.WorkflowID("inv_e2e_4"), "").Get(ctx, nil)
	if err == nil {
		t.Fatal("the run of an unknown customer succeeded")
	}
	if want := `unknown customer "cus_e2e_nobody"`; !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want it to say %s", err, want)
	}
	if len(e.box.keys) != 0 {
		t.Fatal("a message was sent for an unknown customer")
	}
}

// quietLogger drops the SDK client's logs in tests.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// TestFlowAgainstProviderContracts runs two steps of a real run with every real client
// (go-openai, sendgrid-go, twilio-go) pointed at mocks generated from the providers' own
// OpenAPI specs; `make test` fails if any request broke a contract. The OpenAI mock answers
// a placeholder that is not a valid decision, so the rules decide, and record why.
func TestFlowAgainstProviderContracts(t *testing.T) {
	sg, tw, oa := testutil.ProviderMock(t, "SENDGRID_MOCK_URL"), testutil.ProviderMock(t, "TWILIO_MOCK_URL"), testutil.ProviderMock(t, "OPENAI_MOCK_URL")
	e := startE2E(t, []time.Duration{0, 2 * time.Second}, time.Second, func(a *activities.Activities) {
		var err error
		if a.Email, err = email.New(email.Config{APIKey: "SG.contract", BaseURL: sg, FromEmail: "billing@shop.example"}); err != nil {
			t.Fatal(err)
		}
		if a.SMS, err = sms.New(sms.Config{AccountSID: "AC00000000000000000000000000000000", AuthToken: "token",
			From: "+14155550100", BaseURL: tw, StatusCallbackURL: "https://recoup.example/v1/twilio/status"}); err != nil {
			t.Fatal(err)
		}
		if a.LLM, err = llm.New(llm.Config{APIKey: "sk-contract", BaseURL: oa, Model: "gpt-4o-mini"}); err != nil {
			t.Fatal(err)
		}
	})
	e.event(failed("evt_e2e_c1", "inv_e2e_5", "cus_e2e_5", time.Now().UTC()))
	res := e.result("inv_e2e_5")
	if res.Status != recoup.StatusExhausted || res.Steps != 2 {
		t.Fatalf("result = %+v", res)
	}
	st := e.state("inv_e2e_5")
	if len(st.Messages) != 2 || st.Messages[0].Channel != recoup.ChannelEmail || st.Messages[1].Channel != recoup.ChannelSMS {
		t.Fatalf("messages = %+v, want email then sms", st.Messages)
	}
	for _, m := range st.Messages {
		if m.Delivery != store.SendSent {
			t.Fatalf("message %+v was not accepted by the provider mock", m)
		}
	}
	for _, d := range st.Decisions {
		if d.DecidedBy != recoup.DecidedByRules || len(d.Violations) == 0 || d.Model != "gpt-4o-mini" {
			t.Fatalf("decision %+v: want the rules with the model's unusable answer recorded", d)
		}
	}
}
