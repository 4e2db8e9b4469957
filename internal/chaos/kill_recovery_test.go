package chaos_test

// How long the activities a kill cuts take to recover (TestKillMidSend): right after each
// kill the test asks Temporal which of the runs' activities were running on the killed
// worker (started, last worker identity its pid), and afterwards reads from each run's
// history when the activity completed and which worker ran the attempt that completed it.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
)

// kmsCutActivity is an activity a kill cut: started on the killed worker, not completed.
type kmsCutActivity struct {
	wfID, runID, activityID, activityType string
	kill                                  int // the index of the kill (worker kill+1 started right after it)
	// lastSign is the cut attempt's last sign of life the server had: its start or its
	// last heartbeat. The server times the attempt out kmsHeartbeatTimeout after it.
	lastSign time.Time
	attempt  int32
}

// kmsHeartbeatTimeout is the runs' activities' heartbeat timeout (workflows.livenessTimeout).
const kmsHeartbeatTimeout = 5 * time.Second

// kmsCutBy lists the runs' activities that the worker with pid was running when it was
// killed (the server still shows them started on it until their heartbeat timeout).
func kmsCutBy(ctx context.Context, c client.Client, invoices []string, pid, kill int) ([]kmsCutActivity, error) {
	prefix := fmt.Sprintf("%d@", pid) // the SDK's default identity: pid@host@
	var cut []kmsCutActivity
	for _, inv := range invoices {
		d, err := c.DescribeWorkflowExecution(ctx, recoup.WorkflowID(inv), "")
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", inv, err)
		}
		for _, p := range d.GetPendingActivities() {
			if p.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED && strings.HasPrefix(p.GetLastWorkerIdentity(), prefix) {
				cut = append(cut, kmsCutActivity{wfID: recoup.WorkflowID(inv), runID: d.GetWorkflowExecutionInfo().GetExecution().GetRunId(),
					activityID: p.GetActivityId(), activityType: p.GetActivityType().GetName(), kill: kill,
					lastSign: kmsLater(p.GetLastStartedTime().AsTime(), p.GetLastHeartbeatTime().AsTime()), attempt: p.GetAttempt()})
			}
		}
	}
	return cut, nil
}

func kmsLater(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// kmsRecovery is how a cut activity ended.
type kmsRecovery struct {
	closed    bool
	completed bool          // closed as completed (not failed, timed out or canceled)
	fromNext  time.Duration // from the start of the first worker after the kill to its close
	resumed   time.Duration // from the same start to the start of the attempt that closed it
	timedOut  time.Duration // from the same start to the server's heartbeat timeout of the cut attempt
	byNext    bool          // the attempt that closed it ran on that first worker (no later kill in between)
	types     string
}

// kmsRecoveries reads, from each cut activity's run history, when it closed and which
// worker (pid → index in pids) ran the attempt that closed it.
func kmsRecoveries(ctx context.Context, c client.Client, cuts []kmsCutActivity, starts map[int]time.Time, pids map[int]int) ([]kmsRecovery, error) {
	histories := map[string][]*historypb.HistoryEvent{}
	var out []kmsRecovery
	for _, cut := range cuts {
		events, ok := histories[cut.runID]
		if !ok {
			it := c.GetWorkflowHistory(ctx, cut.wfID, cut.runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					return nil, fmt.Errorf("history of %s: %w", cut.wfID, err)
				}
				events = append(events, e)
			}
			histories[cut.runID] = events
		}
		r := kmsRecovery{types: cut.activityType, timedOut: cut.lastSign.Add(kmsHeartbeatTimeout).Sub(starts[cut.kill+1])}
		var scheduled int64
		var startedBy string
		var startedAt time.Time
		for _, e := range events {
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				if e.GetActivityTaskScheduledEventAttributes().GetActivityId() == cut.activityID {
					scheduled = e.GetEventId()
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
				if a := e.GetActivityTaskStartedEventAttributes(); scheduled != 0 && a.GetScheduledEventId() == scheduled {
					startedBy, startedAt = a.GetIdentity(), e.GetEventTime().AsTime()
				}
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED,
				enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
				if scheduled == 0 || r.closed || kmsScheduledOf(e) != scheduled {
					continue
				}
				r.closed = true
				r.completed = e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
				r.fromNext = e.GetEventTime().AsTime().Sub(starts[cut.kill+1])
				r.resumed = startedAt.Sub(starts[cut.kill+1])
				var pid int
				if _, err := fmt.Sscanf(startedBy, "%d@", &pid); err == nil {
					r.byNext = pids[pid] == cut.kill+1
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func kmsScheduledOf(e *historypb.HistoryEvent) int64 {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		return e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		return e.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		return e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
		return e.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()
	}
	return 0
}

// kmsDistribution is "n=…, p50 …, p90 …, max …" of ds (nearest rank).
func kmsDistribution(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	r := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
	return fmt.Sprintf("n=%d p50=%s p90=%s max=%s", len(s), r(rank(0.5)), r(rank(0.9)), r(s[len(s)-1]))
}

// kmsRecoveryLine summarises the recoveries in the chaos output's format.
func kmsRecoveryLine(rs []kmsRecovery) string {
	types := map[string]int{}
	var all, clean, resumed, timedOut []time.Duration
	for _, r := range rs {
		types[r.types]++
		if !r.closed {
			continue
		}
		all, resumed, timedOut = append(all, r.fromNext), append(resumed, r.resumed), append(timedOut, r.timedOut)
		if r.byNext {
			clean = append(clean, r.fromNext)
		}
	}
	var names []string
	for name, n := range types {
		names = append(names, fmt.Sprintf("%d %s", n, name))
	}
	sort.Strings(names)
	return fmt.Sprintf("kill-recovery: %d activities cut (%s); from the start of the worker after the kill to completion: "+
		"all, including those a later kill cut again %s (the cut attempt timed out on its heartbeat: %s; the next attempt started: %s); those completed by that worker %s",
		len(rs), strings.Join(names, ", "), kmsDistribution(all), kmsDistribution(timedOut), kmsDistribution(resumed), kmsDistribution(clean))
}
