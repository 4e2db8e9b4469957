package activities_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
)

// The runs' heartbeat timeout is 5 s (workflows livenessTimeout). Left to the SDK, heartbeats
// go at most every 0.8 × that (4 s), counted from when the previous heartbeat call returned,
// so a frontend answering heartbeats 1.5 s late timed out a live worker's attempt: the SDK
// cancelled its provider call mid-request (outcome unknown) and the message went to
// reconcile although no worker died. Workers built with activities.WithKeepAlive heartbeat
// at most a second apart.
const reviewLiveness = 5 * time.Second // workflows/dunning.go livenessTimeout

// slowHeartbeats delays every heartbeat RPC, as a busy frontend does.
func slowHeartbeats(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := req.(*workflowservice.RecordActivityTaskHeartbeatRequest); ok {
			time.Sleep(d) // simulated server latency, not synchronisation
		}
		return inv(ctx, method, req, reply, cc, opts...)
	}
}

// sendWorkflow runs one SendEmail with the options of workflows.sendActivity.
func sendWorkflow(ctx workflow.Context, in activities.SendInput) (activities.SendResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, HeartbeatTimeout: reviewLiveness,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	var out activities.SendResult
	err := workflow.ExecuteActivity(ctx, "SendEmail", in).Get(ctx, &out)
	return out, err
}

// The same margin on a real send: SendGrid answers in 9 s (inside the shipped 10 s
// SENDGRID_TIMEOUT), the heartbeat RPCs take 1.5 s. The live worker's attempt is timed out,
// its context cancelled mid-call, and the message ends 'reconcile' (unknown: a resend after
// the 30-minute window unless SendGrid's event names it) instead of 'sent'.
func TestASlowButHealthySendUnderSlowHeartbeatsEndsSentNotReconcile(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	sg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(9 * time.Second): // SendGrid's latency, not synchronisation
			w.Header().Set("X-Message-Id", "sg-msg-1")
			w.WriteHeader(http.StatusAccepted)
		case <-r.Context().Done():
		}
	}))
	defer sg.Close()
	em, err := sendgrid.New(sendgrid.Config{APIKey: "SG.test-key", BaseURL: sg.URL, FromEmail: "billing@shop.example", FromName: "Shop", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.acts.Email = em
	ctx := context.Background()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: fakes.TemporalCLI(t), ExtraArgs: []string{"--headless"}, LogLevel: "error",
	})
	if err != nil {
		t.Fatalf("start the Temporal dev server: %v", err)
	}
	defer func() { _ = srv.Stop() }()
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(),
		ConnectionOptions: client.ConnectionOptions{DialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(slowHeartbeats(1500 * time.Millisecond))}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, "keepalive-send", activities.WithKeepAlive(worker.Options{}))
	w.RegisterWorkflow(sendWorkflow)
	w.RegisterActivityWithOptions(f.acts.SendEmail, activity.RegisterOptions{Name: "SendEmail"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	in := sendInput(1, recoup.ChannelEmail)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "keepalive-send"}, sendWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	var res activities.SendResult
	err = run.Get(ctx, &res)
	row, _, ferr := f.st.FindSend(ctx, in.IdempotencyKey)
	if err != nil || ferr != nil || res.Delivery != postgres.SendSent || row.Status != postgres.SendSent {
		t.Fatalf("a healthy worker's send answered by SendGrid in 9 s: run result %+v (err %v); sends row %q (err %v); SendGrid called %d time(s)",
			res, err, row.Status, ferr, calls.Load())
	}
}
