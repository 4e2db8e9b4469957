package main

// End-to-end tests of the worker: the real workflow and activities against a real Temporal
// dev server (the pinned CLI, built by `make temporal`), real PostgreSQL, the ingest path the
// starter uses, and the real SendGrid client talking to a fake that counts messages per
// idempotency key. With RECOUP_RECORD_HISTORIES=1 the main scenarios also write their
// histories to workflows/testdata for the replay tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/observability"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/twilio"
	"github.com/recoup-dunning/recoup/worker/workertest"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

func TestDuplicateDeliveriesMakeOneRunAndOneMessage(t *testing.T) {
	e := workertest.Start(t, workertest.Options{})
	now := time.Now().UTC()
	ev := workertest.Failed("evt_e2e_1", "inv_e2e_1", "cus_e2e_1", now)
	runIDs := make([]string, 5)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, _ := json.Marshal(ev)
			if _, err := e.Ingest.Accept(context.Background(), raw, "test"); err != nil {
				t.Errorf("delivery %d: %v", i, err)
			}
			d, err := e.Client.DescribeWorkflowExecution(context.Background(), recoup.WorkflowID("inv_e2e_1"), "")
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
	e.Eventually("the first message", func() bool { return len(e.State("inv_e2e_1").Messages) == 1 })
	if n := e.Mail.Accepted(key); n != 1 {
		t.Fatalf("provider accepted %d messages for %s, want 1", n, key)
	}
	// A late duplicate of the same event changes nothing.
	if res := e.Event(ev); !res.Duplicate {
		t.Fatalf("late duplicate: %+v", res)
	}
	e.Event(map[string]any{"type": "payment.retry_failed", "event_id": "evt_e2e_r1", "invoice_id": "inv_e2e_1",
		"attempt_id": "att_2", "failure_code": "insufficient_funds", "occurred_at": now.Add(time.Minute).Format(time.RFC3339Nano)})
	e.Event(map[string]any{"type": "payment.retry_succeeded", "event_id": "evt_e2e_r2", "invoice_id": "inv_e2e_1",
		"attempt_id": "att_3", "occurred_at": now.Add(2 * time.Minute).Format(time.RFC3339Nano)})
	if res := e.Result("inv_e2e_1"); res.Status != recoup.StatusRecovered || res.Steps != 1 {
		t.Fatalf("result = %+v, want recovered after step 1", res)
	}
	if n := e.Mail.Accepted(key); n != 1 {
		t.Fatalf("provider accepted %d messages, want 1", n)
	}
	st := e.State("inv_e2e_1")
	if st.Failures != 2 || st.Status != recoup.StatusRecovered {
		t.Fatalf("state = %+v", st)
	}
	var outcome string
	if err := e.Store.Pool().QueryRow(context.Background(), `SELECT outcome FROM dunning_runs WHERE workflow_id = $1`,
		recoup.WorkflowID("inv_e2e_1")).Scan(&outcome); err != nil || outcome != "recovered" {
		t.Fatalf("stored outcome = %q, %v", outcome, err)
	}
	// Support staff find the run by its search attributes.
	e.Eventually("the run in a CustomerId list filter", func() bool {
		resp, err := e.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: "CustomerId = 'cus_e2e_1' AND DunningStatus = 'recovered' AND DunningStep = 1"})
		return err == nil && len(resp.Executions) == 1
	})
	e.Record("inv_e2e_1", "recovered")
}

func TestRelayDeliversAcceptedEvents(t *testing.T) {
	e := workertest.Start(t, workertest.Options{})
	// An event accepted while Temporal was unreachable: recorded, not delivered.
	raw, _ := json.Marshal(workertest.Failed("evt_e2e_relay", "inv_e2e_6", "cus_e2e_6", time.Now().UTC()))
	ev, err := events.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.RecordEvent(context.Background(), postgres.Event{EventID: ev.EventID, Type: ev.Type, Source: "test",
		InvoiceID: ev.InvoiceID, CustomerID: ev.CustomerID, OccurredAt: ev.OccurredAt, Body: ev.Raw,
		Customer: &postgres.Customer{CustomerID: ev.CustomerID, Email: ev.Customer.Email, EmailConsentSet: ev.Customer.EmailConsent, UpdatedAt: ev.OccurredAt}}); err != nil {
		t.Fatal(err)
	}
	n, err := e.Ingest.DeliverPending(context.Background(), 100, nil)
	if err != nil || n != 1 {
		t.Fatalf("delivered %d, %v; want 1", n, err)
	}
	e.Eventually("the first message", func() bool { return len(e.State("inv_e2e_6").Messages) == 1 })
	if n, err := e.Ingest.DeliverPending(context.Background(), 100, nil); err != nil || n != 0 {
		t.Fatalf("second relay delivered %d, %v; want nothing", n, err)
	}
}

func TestScheduleRunsToExhaustionWithOptOut(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 4 * time.Second, 8 * time.Second}, FinalWait: 2 * time.Second})
	now := time.Now().UTC()
	e.Event(workertest.Failed("evt_e2e_x1", "inv_e2e_2", "cus_e2e_2", now))
	e.Eventually("the first message", func() bool { return len(e.State("inv_e2e_2").Messages) == 1 })
	e.Event(map[string]any{"type": "dunning.opt_out", "event_id": "evt_e2e_x2", "invoice_id": "inv_e2e_2", "channel": "sms",
		"occurred_at": now.Add(time.Second).Format(time.RFC3339Nano)})
	e.Event(map[string]any{"type": "dunning.opt_out", "event_id": "evt_e2e_x2", "invoice_id": "inv_e2e_2", "channel": "sms",
		"occurred_at": now.Add(time.Second).Format(time.RFC3339Nano)})
	res := e.Result("inv_e2e_2")
	if res.Status != recoup.StatusExhausted || res.Steps != 3 {
		t.Fatalf("result = %+v, want exhausted after 3 steps", res)
	}
	st := e.State("inv_e2e_2")
	if len(st.Messages) != 3 {
		t.Fatalf("messages = %+v", st.Messages)
	}
	for _, m := range st.Messages {
		// Rules: step 2 prefers SMS, but the customer opted out of SMS: email instead. The
		// worker has no Twilio credentials, so an SMS would have been "logged".
		if m.Channel != recoup.ChannelEmail || m.Delivery != postgres.SendSent {
			t.Fatalf("message %+v, want every step by email, sent", m)
		}
		if n := e.Mail.Accepted(m.IdempotencyKey); n != 1 {
			t.Fatalf("%s accepted %d times", m.IdempotencyKey, n)
		}
	}
	e.Record("inv_e2e_2", "exhausted")
}

func TestPauseResumeAndCancel(t *testing.T) {
	e := workertest.Start(t, workertest.Options{})
	now := time.Now().UTC()
	e.Event(workertest.Failed("evt_e2e_p1", "inv_e2e_3", "cus_e2e_3", now))
	e.Eventually("the first message", func() bool { return len(e.State("inv_e2e_3").Messages) == 1 })
	e.Event(map[string]any{"type": "dunning.pause", "event_id": "evt_e2e_p2", "invoice_id": "inv_e2e_3", "reason": "disputed",
		"occurred_at": now.Format(time.RFC3339Nano)})
	e.Eventually("paused", func() bool { return e.State("inv_e2e_3").Status == recoup.StatusPaused })
	e.Event(map[string]any{"type": "dunning.resume", "event_id": "evt_e2e_p3", "invoice_id": "inv_e2e_3",
		"occurred_at": now.Format(time.RFC3339Nano)})
	e.Eventually("active", func() bool { return e.State("inv_e2e_3").Status == recoup.StatusActive })
	e.Event(map[string]any{"type": "dunning.cancel", "event_id": "evt_e2e_p4", "invoice_id": "inv_e2e_3", "reason": "written off",
		"occurred_at": now.Format(time.RFC3339Nano)})
	if res := e.Result("inv_e2e_3"); res.Status != recoup.StatusCanceled || res.Reason != "written off" {
		t.Fatalf("result = %+v", res)
	}
	// A failure that occurred while the run was still open belongs to that ended run: it is
	// recorded, not an error, and starts nothing (one after the run ended starts the
	// invoice's next run: internal/postgres's episode tests).
	res := e.Event(workertest.Failed("evt_e2e_p5", "inv_e2e_3", "cus_e2e_3", now))
	if !res.Delivered || res.Duplicate {
		t.Fatalf("event after the end: %+v", res)
	}
	d, err := e.Client.DescribeWorkflowExecution(context.Background(), recoup.WorkflowID("inv_e2e_3"), "")
	if err != nil || d.WorkflowExecutionInfo.Status != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("describe = %v, %v; want the canceled run still the latest, completed", d, err)
	}
	e.Record("inv_e2e_3", "paused_canceled")
}

func TestUnknownCustomerFailsTheRun(t *testing.T) {
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0}})
	ev := workertest.Failed("evt_e2e_u1", "inv_e2e_4", "cus_e2e_nobody", time.Now().UTC())
	delete(ev, "customer")
	e.Event(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := e.Client.GetWorkflow(ctx, recoup.WorkflowID("inv_e2e_4"), "").Get(ctx, nil)
	if err == nil {
		t.Fatal("the run of an unknown customer succeeded")
	}
	if want := `unknown customer "cus_e2e_nobody"`; !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want it to say %s", err, want)
	}
	if e.Mail.AcceptedTotal() != 0 {
		t.Fatal("a message was sent for an unknown customer")
	}
}

// TestFlowAgainstProviderContracts runs two steps of a real run with every real client
// (go-openai, sendgrid-go, twilio-go) pointed at mocks generated from the providers' own
// OpenAPI specs; `make test` fails if any request broke a contract. The OpenAI mock answers
// a placeholder that is not a valid decision, so the rules decide, and record why.
func TestFlowAgainstProviderContracts(t *testing.T) {
	sg, tw, oa := fakes.ProviderMock(t, "SENDGRID_MOCK_URL"), fakes.ProviderMock(t, "TWILIO_MOCK_URL"), fakes.ProviderMock(t, "OPENAI_MOCK_URL")
	e := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 2 * time.Second}, FinalWait: time.Second, Configure: func(a *activities.Activities) {
		var err error
		if a.Dunning.Email, err = sendgrid.New(sendgrid.Config{APIKey: "SG.contract", BaseURL: sg, FromEmail: "billing@shop.example"}); err != nil {
			t.Fatal(err)
		}
		if a.Dunning.SMS, err = twilio.New(twilio.Config{AccountSID: "AC00000000000000000000000000000000", AuthToken: "token",
			From: "+14155550100", BaseURL: tw, StatusCallbackURL: "https://recoup.example/v1/twilio/status"}); err != nil {
			t.Fatal(err)
		}
		if a.Dunning.LLM, err = openai.New(openai.Config{APIKey: "sk-contract", BaseURL: oa, Model: "gpt-4o-mini"}); err != nil {
			t.Fatal(err)
		}
	}})
	e.Event(workertest.Failed("evt_e2e_c1", "inv_e2e_5", "cus_e2e_5", time.Now().UTC()))
	res := e.Result("inv_e2e_5")
	if res.Status != recoup.StatusExhausted || res.Steps != 2 {
		t.Fatalf("result = %+v", res)
	}
	st := e.State("inv_e2e_5")
	if len(st.Messages) != 2 || st.Messages[0].Channel != recoup.ChannelEmail || st.Messages[1].Channel != recoup.ChannelSMS {
		t.Fatalf("messages = %+v, want email then sms", st.Messages)
	}
	for _, m := range st.Messages {
		if m.Delivery != postgres.SendSent {
			t.Fatalf("message %+v was not accepted by the provider mock", m)
		}
	}
	for _, d := range st.Decisions {
		if d.DecidedBy != recoup.DecidedByRules || len(d.Violations) == 0 || d.Model != "gpt-4o-mini" {
			t.Fatalf("decision %+v: want the rules with the model's unusable answer recorded", d)
		}
	}
}

// With RECOUP_CODEC_KEYS set, a run's history as stored on the server holds no customer
// data in plain text: no name, email, phone, or message text.
func TestHistoryIsEncrypted(t *testing.T) {
	keys, err := codec.ParseKeys(workertest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	e := workertest.Start(t, workertest.Options{DataConverter: codec.DataConverter(keys)})
	e.Event(workertest.Failed("evt_enc_1", "inv_enc", "cus_enc", time.Now().UTC()))
	e.Eventually("the first message", func() bool { return e.Messages("inv_enc") == 1 })
	if st := e.State("inv_enc"); st.Decisions[0].Message == "" { // the codec client reads it back
		t.Fatal("the status query did not decode")
	}
	e.Event(map[string]any{"type": "payment.recovered", "event_id": "evt_enc_2", "invoice_id": "inv_enc",
		"occurred_at": time.Now().UTC().Format(time.RFC3339Nano)})
	e.Result("inv_enc")
	// Read the history with a client that has no keys: what the server stores.
	raw, err := client.NewLazyClient(client.Options{HostPort: e.HostPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	it := raw.GetWorkflowHistory(context.Background(), recoup.WorkflowID("inv_enc"), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	// The binary form holds payload bytes as they are, unencoded.
	b, err := proto.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"Ada", "Lovelace", "example.com", "4155550123", "couldn't process", "card_declined", "friendly"} {
		if bytes.Contains(b, []byte(plain)) {
			t.Errorf("the stored history contains %q in plain text", plain)
		}
	}
	if !bytes.Contains(b, []byte("binary/encrypted")) {
		t.Fatal("no encrypted payload in the history")
	}
	e.Record("inv_enc", filepath.Join("encrypted", "recovered_k1"))
}

// After a run, the worker's /metrics shows the business metrics.
func TestMetricsEndpointAfterARun(t *testing.T) {
	reg := observability.NewRegistry()
	e := workertest.Start(t, workertest.Options{Configure: func(a *activities.Activities) {
		a.Dunning.Metrics = observability.NewBusiness(reg)
		a.Detector.Metrics = a.Dunning.Metrics
	}})
	e.Event(workertest.Failed("evt_met_1", "inv_met", "cus_met", time.Now().UTC()))
	e.Eventually("the first message", func() bool { return e.Messages("inv_met") == 1 })
	e.Event(map[string]any{"type": "dunning.cancel", "event_id": "evt_met_2", "invoice_id": "inv_met", "reason": "test",
		"occurred_at": time.Now().UTC().Format(time.RFC3339Nano)})
	e.Result("inv_met")
	srv := httptest.NewServer(MetricsHandler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"recoup_runs_started_total 1",
		`recoup_runs_ended_total{outcome="canceled"} 1`,
		`recoup_messages_total{channel="email",decided_by="rules",delivery="sent",tone="friendly"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
