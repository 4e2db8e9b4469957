package observability_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/observability"
)

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps the spans' names and the
// service.name of their resource.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []string
	services map[string]bool
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				o.services[kv.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, s.GetName())
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

func helloWorkflow(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Millisecond, MaximumAttempts: 3},
	})
	var out string
	err := workflow.ExecuteActivity(ctx, "Hello", name).Get(ctx, &out)
	return out, err
}

func helloActivity(ctx context.Context, name string) (string, error) {
	if activity.GetInfo(ctx).Attempt == 1 {
		return "", errors.New("first attempt fails, so that the failure metric exists")
	}
	return "hello " + name, nil
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// TestSDKMetricsAndTracingFromARealWorker runs a workflow and an activity on a Temporal dev
// server through a client wired like the binaries must wire theirs (SDK metrics handler on
// the shared registry, tracing interceptor), then checks the metric names the SDK really
// emits, that the dashboard's temporal_* queries use only those, and that spans reached
// the OTLP endpoint.
func TestSDKMetricsAndTracingFromARealWorker(t *testing.T) {
	ctx := context.Background()
	rcv := &otlpReceiver{services: map[string]bool{}}
	collector := httptest.NewServer(rcv)
	defer collector.Close()
	clearOTel(t) // before the dev server starts: it reads OTEL_* too
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  fakes.TemporalCLI(t),
		ExtraArgs:     []string{"--headless"},
		LogLevel:      "error",
		ClientOptions: &client.Options{Logger: quietLogger{}},
	})
	if err != nil {
		t.Fatalf("start the Temporal dev server: %v", err)
	}
	defer func() { _ = srv.Stop() }()
	oldTP, oldProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(oldTP); otel.SetTextMapPropagator(oldProp) })
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	ic, shutdownTracing, err := observability.SetupTracing(ctx, "recoup-test")
	if err != nil || ic == nil {
		t.Fatalf("SetupTracing = %v, %v", ic, err)
	}

	reg := observability.NewRegistry()
	observability.NewBusiness(reg)
	mh, err := observability.SDKMetricsHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{
		HostPort: srv.FrontendHostPort(), Logger: quietLogger{},
		MetricsHandler: mh, Interceptors: []interceptor.ClientInterceptor{ic},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const taskQueue = "observability-test"
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(helloWorkflow, workflow.RegisterOptions{Name: "HelloWorkflow"})
	w.RegisterActivityWithOptions(helloActivity, activity.RegisterOptions{Name: "Hello"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "observability-test", TaskQueue: taskQueue}, "HelloWorkflow", "Ada")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil || out != "hello Ada" {
		t.Fatalf("workflow result %q, %v", out, err)
	}
	w.Stop() // waits for the tasks in flight, whose metrics are then recorded

	fams := families(t, reg)
	for name, labels := range map[string]map[string]string{
		"temporal_workflow_task_execution_latency_seconds":         {"workflow_type": "HelloWorkflow", "task_queue": taskQueue, "namespace": "default"},
		"temporal_workflow_task_schedule_to_start_latency_seconds": {"task_queue": taskQueue},
		"temporal_activity_execution_latency_seconds":              {"activity_type": "Hello", "workflow_type": "HelloWorkflow"},
		"temporal_activity_schedule_to_start_latency_seconds":      {"activity_type": "Hello"},
		"temporal_activity_execution_failed_total":                 {"activity_type": "Hello"},
		"temporal_workflow_completed_total":                        {"workflow_type": "HelloWorkflow"},
		"temporal_request_total":                                   {"operation": "StartWorkflowExecution"},
		"temporal_worker_task_slots_available":                     {"worker_type": "ActivityWorker"},
		"recoup_runs_started_total":                                nil,
	} {
		if series(fams[name], labels) == nil {
			var have []string
			for n := range fams {
				if strings.HasPrefix(n, "temporal_") {
					have = append(have, n)
				}
			}
			t.Errorf("no %s%v; SDK metrics: %v", name, labels, have)
		}
	}
	have := exposedNames(fams)
	for name, panel := range dashboardMetrics(t) {
		if strings.HasPrefix(name, "temporal_") && !have[name] {
			t.Errorf("panel %q queries %s, which the SDK does not emit", panel, name)
		}
	}

	c.Close()
	if err := shutdownTracing(ctx); err != nil { // flushes the batch to the receiver
		t.Fatal(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, want := range []string{"StartWorkflow:HelloWorkflow", "RunWorkflow:HelloWorkflow", "StartActivity:Hello", "RunActivity:Hello"} {
		found := false
		for _, s := range rcv.spans {
			found = found || s == want
		}
		if !found {
			t.Errorf("no span %q; got %v", want, rcv.spans)
		}
	}
	if !rcv.services["recoup-test"] {
		t.Errorf("service.name = %v, want recoup-test", rcv.services)
	}
}
