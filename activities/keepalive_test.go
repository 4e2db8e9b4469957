package activities_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup/activities"
)

// keepAliveHeartbeat is the heartbeat timeout of the test's activity; its call takes
// keepAliveCall, several heartbeat timeouts, as a slow provider answer would.
const (
	keepAliveHeartbeat = 200 * time.Millisecond
	keepAliveCall      = 5 * keepAliveHeartbeat
)

// slowCall is an activity whose call takes keepAliveCall and never heartbeats itself.
func slowCall(ctx context.Context) (string, error) {
	select {
	case <-time.After(keepAliveCall): // the provider's latency, not synchronisation
		return "answered", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// oneSlowCall runs slowCall once (no retry) under a heartbeat timeout shorter than the call.
func oneSlowCall(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, HeartbeatTimeout: keepAliveHeartbeat,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var out string
	err := workflow.ExecuteActivity(ctx, slowCall).Get(ctx, &out)
	return out, err
}

// A live worker keeps its slow call alive: the server re-dispatches only the activities of
// a worker that stopped heartbeating (died), never one still waiting for the provider's
// answer. Without the interceptor the same call times out on its heartbeat timeout.
func TestKeepAliveHeartbeatsASlowCallPastItsHeartbeatTimeout(t *testing.T) {
	for _, tc := range []struct {
		name        string
		keepAlive   bool
		wantTimeout bool
	}{
		{name: "with KeepAlive the call completes", keepAlive: true},
		{name: "without it the call times out on its heartbeat", wantTimeout: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			if tc.keepAlive {
				env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&activities.KeepAlive{}}})
			}
			env.RegisterWorkflow(oneSlowCall)
			env.RegisterActivity(slowCall)
			env.ExecuteWorkflow(oneSlowCall)
			if !env.IsWorkflowCompleted() {
				t.Fatal("workflow did not complete")
			}
			var out string
			err := env.GetWorkflowResult(&out)
			var timeout *temporal.TimeoutError
			switch {
			case tc.wantTimeout && !(errors.As(err, &timeout) && timeout.TimeoutType().String() == "Heartbeat"):
				t.Fatalf("got %q, %v; want a heartbeat timeout", out, err)
			case !tc.wantTimeout && (err != nil || out != "answered"):
				t.Fatalf("got %q, %v; want the call's answer", out, err)
			}
		})
	}
}

// A local activity has no heartbeat: KeepAlive leaves it alone, and it completes.
func TestKeepAliveLeavesLocalActivitiesAlone(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&activities.KeepAlive{}}})
	wf := func(ctx workflow.Context) (string, error) {
		ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: time.Minute})
		var out string
		err := workflow.ExecuteLocalActivity(ctx, slowCall).Get(ctx, &out)
		return out, err
	}
	env.RegisterWorkflow(wf)
	env.ExecuteWorkflow(wf)
	var out string
	if err := env.GetWorkflowResult(&out); err != nil || out != "answered" {
		t.Fatalf("got %q, %v; want the call's answer", out, err)
	}
}
