// Package workertest is the end-to-end test harness: a real Temporal dev server (the pinned
// CLI), real PostgreSQL, the real worker (workflow and activities), the real ingest path,
// and the real SendGrid client talking to the SendGrid fake (internal/fakes), which checks
// every request against the contract and counts messages per idempotency key.
package workertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"google.golang.org/grpc"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/model/policy"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/workflows"
)

// SearchAttributeArgs registers Recoup's search attributes on a dev server.
var SearchAttributeArgs = func() []string {
	var args []string
	for _, sa := range recoup.SearchAttributes {
		args = append(args, "--search-attribute", sa.Name+"="+sa.Type)
	}
	return args
}()

// Test-only payload encryption keys (never used outside tests). TestKeysRotated is the
// set after rotating to k2: it encrypts with k2 and still decrypts k1.
const (
	TestKeys        = "k1:8tXgTnqJDTkWgOEcgyNytokDmBuGFvCyC2aL1C9SW6A="
	TestKeysRotated = "k2:8JqjxjGcl6t2SrzU267nMkRCBmcAFYNFDe5exoJ4Irg=,k1:8tXgTnqJDTkWgOEcgyNytokDmBuGFvCyC2aL1C9SW6A="
)

// Options shape a Harness.
type Options struct {
	// DataConverter, when set, is used by the worker and the clients (payload encryption).
	DataConverter converter.DataConverter
	Schedule      []time.Duration // default: 0 and 1h
	FinalWait     time.Duration   // default: 1h
	Configure     func(*activities.Activities)
	// DBFile persists the dev server's state so that it can be restarted (RestartTemporal).
	DBFile string
	// NoWorker leaves the worker to the test (StartWorker).
	NoWorker bool
	// HostPort, when set, is an existing Temporal server's frontend (namespace "default",
	// Recoup's search attributes registered): no dev server is started.
	HostPort string
	// DialOptions are added to the client's connection (the benchmarks count its calls).
	DialOptions []grpc.DialOption
}

// Harness is a running end-to-end environment.
type Harness struct {
	T      testing.TB
	Client client.Client // survives RestartTemporal
	Store  *postgres.Store
	Ingest *eventlog.Ingestor
	// Mail is the SendGrid fake the worker sends to; its URL is SENDGRID_BASE_URL for a
	// worker process.
	Mail    *fakes.SendGrid
	MailURL string
	Acts    *activities.Activities

	opts     Options
	hostPort string
	server   *testsuite.DevServer
	workers  []worker.Worker
}

// Start starts the dev server, a store on a fresh schema, the SendGrid fake and the worker.
func Start(t testing.TB, o Options) *Harness {
	t.Helper()
	if o.Schedule == nil {
		o.Schedule = []time.Duration{0, time.Hour}
	}
	if o.FinalWait == 0 {
		o.FinalWait = time.Hour
	}
	h := &Harness{T: t, opts: o, Mail: fakes.NewSendGrid(t)}
	if o.HostPort != "" {
		h.hostPort = o.HostPort
	} else {
		h.StartTemporal()
		t.Cleanup(func() { h.StopTemporal() })
	}
	h.Store = fakes.MustStore(t)
	h.MailURL = h.Mail.URL
	sender, err := sendgrid.New(sendgrid.Config{APIKey: "SG.e2e", BaseURL: h.Mail.URL, FromEmail: "billing@shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	// Flows of seconds run at any hour of the day: allowed hours for both channels (real
	// SMS providers included, which IgnoreQuietHours never overrides) have tests of their own.
	if set.Policy.QuietHours, err = policy.ParseQuietHours("00:00", "24:00"); err != nil {
		t.Fatal(err)
	}
	base := activities.Base{Store: h.Store, Prompts: func() *templates.Set { return set }}
	h.Acts = &activities.Activities{Detector: &activities.DetectorActivities{Base: base, Email: sender}}
	h.Acts.Dunning = &activities.DunningActivities{Base: base, Email: sender,
		Schedule: o.Schedule, FinalWait: o.FinalWait, IgnoreQuietHours: true,
		// Schedules of seconds would hit the weekly contact cap; it has tests of its own.
		ContactCap: &policy.ContactCap{Messages: 100, Days: 7},
		PaymentURL: "https://pay.example/{invoice_id}", UnsubscribeURL: "https://pay.example/u/{customer_id}",
		// The harness's tests deliver the providers' events themselves (the evidence path).
		HearsEvents: map[recoup.Channel]bool{recoup.ChannelEmail: true, recoup.ChannelSMS: true}}
	if o.Configure != nil {
		o.Configure(h.Acts)
	}
	// As the shipped configuration connects (config.GrpcCompression's default).
	h.Client, err = client.NewLazyClient(client.Options{HostPort: h.hostPort, Logger: quietLogger{}, DataConverter: o.DataConverter,
		ConnectionOptions: client.ConnectionOptions{GrpcCompression: &client.GrpcCompressionNone{}, DialOptions: o.DialOptions}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Client.Close)
	h.Acts.Detector.Signaler = h.Client
	h.Ingest = &eventlog.Ingestor{Store: h.Store, Temporal: h.Client}
	if !o.NoWorker {
		h.StartWorker()
	}
	return h
}

// StartTemporal starts (or restarts, on the same port and database file) the dev server.
func (h *Harness) StartTemporal() {
	h.T.Helper()
	opts := testsuite.DevServerOptions{
		ExistingPath:  fakes.TemporalCLI(h.T),
		ExtraArgs:     append([]string{"--headless"}, SearchAttributeArgs...),
		LogLevel:      "error",
		DBFilename:    h.opts.DBFile,
		ClientOptions: &client.Options{HostPort: h.hostPort, Logger: quietLogger{}},
	}
	srv, err := testsuite.StartDevServer(context.Background(), opts)
	if err != nil {
		h.T.Fatalf("start the Temporal dev server: %v", err)
	}
	h.server, h.hostPort = srv, srv.FrontendHostPort()
}

// HostPort is the dev server's frontend address.
func (h *Harness) HostPort() string { return h.hostPort }

// StopTemporal stops the dev server.
func (h *Harness) StopTemporal() {
	if h.server != nil {
		_ = h.server.Stop()
		h.server = nil
	}
}

// StartWorker starts the worker on the harness's client.
// Its tuning comes from the WORKER_* variables, as the worker binary's does (benchmarks set
// them; tests leave them unset, which keeps the SDK's defaults).
func (h *Harness) StartWorker() {
	h.T.Helper()
	tuning, err := config.TuningFromEnv(os.Getenv)
	if err != nil {
		h.T.Fatal(err)
	}
	h.workers = workflows.NewWorkers(h.Client, h.Acts, workflows.Tuning(tuning))
	for _, w := range h.workers {
		if err := w.Start(); err != nil {
			h.T.Fatal(err)
		}
		h.T.Cleanup(w.Stop)
	}
}

// Event accepts one event through the ingest path (record, then deliver).
func (h *Harness) Event(v map[string]any) eventlog.Result {
	h.T.Helper()
	raw, _ := json.Marshal(v)
	res, err := h.Ingest.Accept(context.Background(), raw, "test")
	if err != nil {
		h.T.Fatalf("event %v: %v", v["event_id"], err)
	}
	return res
}

// State queries a run's state.
func (h *Harness) State(invoice string) recoup.State {
	h.T.Helper()
	v, err := h.Client.QueryWorkflow(context.Background(), recoup.WorkflowID(invoice), "", recoup.QueryStatus)
	if err != nil {
		h.T.Fatalf("query %s: %v", invoice, err)
	}
	var s recoup.State
	if err := v.Get(&s); err != nil {
		h.T.Fatal(err)
	}
	return s
}

// Messages returns how many messages a run has recorded, 0 when it cannot be queried yet.
func (h *Harness) Messages(invoice string) int {
	v, err := h.Client.QueryWorkflow(context.Background(), recoup.WorkflowID(invoice), "", recoup.QueryStatus)
	if err != nil {
		return 0
	}
	var s recoup.State
	if v.Get(&s) != nil {
		return 0
	}
	return len(s.Messages)
}

// Eventually polls cond until it holds (fakes.Eventually).
func (h *Harness) Eventually(what string, cond func() bool) {
	h.T.Helper()
	fakes.Eventually(h.T, cond, what)
}

// Result waits for a run to end and returns its result.
func (h *Harness) Result(invoice string) recoup.DunningResult {
	h.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var res recoup.DunningResult
	if err := h.Client.GetWorkflow(ctx, recoup.WorkflowID(invoice), "").Get(ctx, &res); err != nil {
		h.T.Fatalf("run %s: %v", invoice, err)
	}
	return res
}

// Record writes the run's history to workflows/testdata/<name>.json for the replay tests
// when RECOUP_RECORD_HISTORIES=1.
func (h *Harness) Record(invoice, name string) {
	h.T.Helper()
	h.RecordWorkflow(recoup.WorkflowID(invoice), name)
}

// RecordWorkflow writes any workflow's history to workflows/testdata/<name>.json (name may
// hold a subdirectory) when RECOUP_RECORD_HISTORIES=1.
func (h *Harness) RecordWorkflow(workflowID, name string) {
	h.T.Helper()
	if os.Getenv("RECOUP_RECORD_HISTORIES") != "1" {
		return
	}
	ctx := context.Background()
	it := h.Client.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			h.T.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		h.T.Fatal(err)
	}
	path := filepath.Join(fakes.RepoRoot(), "workflows", "testdata", name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		h.T.Fatal(err)
	}
	h.T.Logf("recorded %s", path)
}

// Customer is a full profile snapshot for a payment.failed event.
func Customer(id string) map[string]any {
	return map[string]any{"name": "Ada Lovelace", "email": id + "@example.com", "phone": "+14155550123",
		"locale": "en-US", "time_zone": "America/New_York", "plan": "pro", "email_consent": true, "sms_consent": true}
}

// Failed is a payment.failed event with a customer snapshot.
func Failed(eventID, invoice, cust string, at time.Time) map[string]any {
	return map[string]any{"type": "payment.failed", "event_id": eventID, "invoice_id": invoice, "customer_id": cust,
		"amount_minor": 4900, "currency": "USD", "failure_code": "card_declined", "attempt_id": "att_1",
		"occurred_at": at.Format(time.RFC3339Nano), "customer": Customer(cust)}
}

// quietLogger drops the SDK client's logs in tests.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// SpikeEvent is a payment.failed with the payment context the failure-spike detector uses.
func SpikeEvent(eventID, invoice, cust, bin string, at time.Time) map[string]any {
	ev := Failed(eventID, invoice, cust, at)
	ev["gateway"], ev["card_bin"], ev["issuer_country"] = "stripe", bin, "de"
	return ev
}

// FailureSpike sends 40 minutes of background failures (one every 2 minutes, two other
// BINs) and then a burst of 16 failures of bin in the last minute, through the ingest path,
// and waits until the detector's incident is recorded. It returns the number of events.
func (h *Harness) FailureSpike(prefix, bin string) int {
	h.T.Helper()
	now := time.Now().UTC()
	n := 0
	send := func(b string, at time.Time) {
		n++
		h.Event(SpikeEvent(fmt.Sprintf("evt_%s_%d", prefix, n), fmt.Sprintf("inv_%s_%d", prefix, n), fmt.Sprintf("cus_%s_%d", prefix, n%7), b, at))
	}
	for i := range 20 {
		send([]string{"424242", "555555"}[i%2], now.Add(-45*time.Minute+time.Duration(i)*2*time.Minute))
	}
	for i := range 16 {
		send(bin, now.Add(-50*time.Second+time.Duration(i)*2*time.Second))
	}
	h.Eventually("the failure-spike incident recorded in PostgreSQL", func() bool {
		incs, _, err := h.Store.Incidents(context.Background(), false, 10)
		return err == nil && len(incs) > 0
	})
	return n
}

// HoldForApproval turns on the approval policy for customers of plan (timeout 1 h, skip on
// timeout) in the harness's prompt set.
func HoldForApproval(t testing.TB, a *activities.Activities, plan string) {
	t.Helper()
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if set.Policy.QuietHours, err = policy.ParseQuietHours("00:00", "24:00"); err != nil {
		t.Fatal(err)
	}
	ap := &set.Policy.Approval
	ap.Enabled, ap.Timeout, ap.OnTimeout = true, policy.Duration(time.Hour), recoup.ApprovalOnTimeoutSkip
	ap.Rules.Plans = []string{plan}
	prompts := func() *templates.Set { return set }
	a.Dunning.Prompts, a.Detector.Prompts = prompts, prompts
}
