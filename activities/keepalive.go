package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
)

// HeartbeatThrottle is the longest the SDK may hold back a heartbeat on a worker that runs
// KeepAlive (worker.Options.MaxHeartbeatThrottleInterval). Left to the SDK it is 0.8 × the
// heartbeat timeout (4 s of the runs' 5 s), counted from when the previous heartbeat call
// returned: a frontend answering a second or two late would time out a live worker's send,
// which the SDK then cancels mid-call (outcome unknown: reconcile). Every 2 s leaves the
// timeout 3 s of margin. Not shorter: the SDK gives a heartbeat call as long as the throttle
// (at least 1 s), and cancels the activity when one takes longer.
const HeartbeatThrottle = 2 * time.Second

// WithKeepAlive returns o with the KeepAlive interceptor and HeartbeatThrottle: the options
// every worker running the runs' activities uses.
func WithKeepAlive(o worker.Options) worker.Options {
	o.Interceptors = append(append([]interceptor.WorkerInterceptor(nil), o.Interceptors...), &KeepAlive{})
	o.MaxHeartbeatThrottleInterval = HeartbeatThrottle
	return o
}

// KeepAlive is a worker interceptor that heartbeats every regular activity scheduled with a
// heartbeat timeout for as long as it runs (the provider call of a send, a model call, a
// PostgreSQL transaction), so that the server learns within that timeout that the worker
// running it died and dispatches the next attempt to a live worker, instead of waiting for
// the start-to-close timeout. The heartbeat says the process is alive, not that the call
// progresses: the start-to-close timeout still bounds a call that hangs.
//
// It costs nothing for a short activity: the first heartbeat goes a quarter of the heartbeat
// timeout after the attempt started, and the SDK sends at most one every 2 s after that
// (HeartbeatThrottle; workers are built with WithKeepAlive). Local activities, and activities scheduled without a heartbeat timeout (by a
// run recorded before their options had one), are not heartbeated.
//
// A new attempt may start while the one before it still runs (a worker cut off from the
// server, not killed: its heartbeats fail, and the SDK then cancels the attempt's context).
// Every activity is idempotent; a send is made safe by its reservation (send.go): the new
// attempt finds it reserved and marks it for reconciliation without calling the provider,
// and the old attempt's definite outcome still settles it.
type KeepAlive struct {
	interceptor.WorkerInterceptorBase
}

// InterceptActivity implements interceptor.WorkerInterceptor.
func (KeepAlive) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &keepAliveInbound{}
	i.Next = next
	return i
}

type keepAliveInbound struct {
	interceptor.ActivityInboundInterceptorBase
}

func (i *keepAliveInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	defer heartbeatWhileRunning(ctx)()
	return i.Next.ExecuteActivity(ctx, in)
}

// heartbeatWhileRunning heartbeats the activity of ctx every quarter of its heartbeat timeout
// until the returned stop is called; it does nothing for a local activity or an activity
// without a heartbeat timeout.
func heartbeatWhileRunning(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	info := activity.GetInfo(ctx)
	if info.IsLocalActivity || info.HeartbeatTimeout <= 0 {
		return func() {}
	}
	every := max(info.HeartbeatTimeout/4, 10*time.Millisecond)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() {
		close(done)
		<-finished // no heartbeat after the attempt returned
	}
}
