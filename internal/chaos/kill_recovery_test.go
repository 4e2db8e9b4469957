package chaos_test

// How long the activities a kill cuts take to recover (TestKillMidSend, TestKillOnce): right
// after each kill the test asks Temporal which of the runs' activities were running on the
// killed worker (started, last worker identity its pid), and afterwards reads from each run's
// history when the activity completed and which worker ran the attempt that completed it. A
// decision made as a local activity is not on the server's list: TestKillOnce knows which
// ones it cut and reads when each was recorded (kmsDecisionRecovery).

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
	"go.temporal.io/sdk/converter"

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
	// handled: from the same start to the completion of the run's first workflow task after
	// the close (the run acting on the outcome); 0 when none completed.
	handled time.Duration
	// waited: the run's workflow tasks that timed out between the close and handled, by
	// timeout type (a task scheduled on the killed worker's sticky queue waits there for its
	// schedule-to-start timeout before it goes to the task queue every worker polls).
	waited []string
	types  string
}

// kmsRecoveries reads, from each cut activity's run history, when it closed and which
// worker (pid → index in pids) ran the attempt that closed it.
func kmsRecoveries(ctx context.Context, c client.Client, cuts []kmsCutActivity, starts map[int]time.Time, pids map[int]int) ([]kmsRecovery, error) {
	histories := map[string][]*historypb.HistoryEvent{}
	var out []kmsRecovery
	for _, cut := range cuts {
		events, ok := histories[cut.runID]
		if !ok {
			var err error
			if events, err = kmsHistory(ctx, c, cut.wfID, cut.runID); err != nil {
				return nil, err
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
				r.byNext = kmsWorkerOf(startedBy, pids) == cut.kill+1
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				if r.closed && r.handled == 0 {
					r.handled = e.GetEventTime().AsTime().Sub(starts[cut.kill+1])
				}
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
				if r.closed && r.handled == 0 {
					r.waited = append(r.waited, kmsTimeoutType(e))
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// kmsHistory reads a run's whole history.
func kmsHistory(ctx context.Context, c client.Client, wfID, runID string) ([]*historypb.HistoryEvent, error) {
	var events []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, wfID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", wfID, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// kmsWorkerOf is the index (pids: pid → index) of the worker with the SDK's default
// identity (pid@host@); -1 when unknown.
func kmsWorkerOf(identity string, pids map[int]int) int {
	var pid int
	if _, err := fmt.Sscanf(identity, "%d@", &pid); err == nil {
		if n, ok := pids[pid]; ok {
			return n
		}
	}
	return -1
}

// kmsTimeoutType names a workflow task timeout's type (StartToClose, ScheduleToStart).
func kmsTimeoutType(e *historypb.HistoryEvent) string {
	return e.GetWorkflowTaskTimedOutEventAttributes().GetTimeoutType().String()
}

// kmsLocalActivityMarker is the SDK's record of a local activity's result in a run's history
// (marker "LocalActivity", its details' "data": the SDK's localActivityMarkerData).
const kmsLocalActivityMarker = "LocalActivity"

// kmsLocalActivities lists the local activities of activityType that a run's history
// recorded, in order: the marker's event and, decoded from its details, the attempt that
// answered.
func kmsLocalActivities(events []*historypb.HistoryEvent, activityType string) ([]*historypb.HistoryEvent, error) {
	var out []*historypb.HistoryEvent
	for _, e := range events {
		m := e.GetMarkerRecordedEventAttributes()
		if e.GetEventType() != enumspb.EVENT_TYPE_MARKER_RECORDED || m.GetMarkerName() != kmsLocalActivityMarker {
			continue
		}
		var data struct{ ActivityType string }
		if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["data"], &data); err != nil {
			return nil, fmt.Errorf("local activity marker %d: %w", e.GetEventId(), err)
		}
		if data.ActivityType == activityType {
			out = append(out, e)
		}
	}
	return out, nil
}

// kmsDecisionRecovery reads from a run's history how its first decision (DecideStrategy as
// a local activity, "lean-run"), cut by kill while the killed worker's workflow task ran it,
// recovered: a local activity has no attempt of its own on the server, so the killed
// worker's workflow task times out (timedOut: the last workflow task timeout before the
// decision), the next one reruns the decision (resumed: when the task that recorded it
// started) and completes with its marker (fromNext = handled: the decision recorded).
func kmsDecisionRecovery(events []*historypb.HistoryEvent, kill int, starts map[int]time.Time, pids map[int]int) (kmsRecovery, error) {
	from := starts[kill+1]
	r := kmsRecovery{types: "DecideStrategy (local activity)"}
	markers, err := kmsLocalActivities(events, "DecideStrategy")
	if err != nil || len(markers) == 0 {
		return r, err
	}
	marker := markers[0]
	byID := map[int64]*historypb.HistoryEvent{}
	for _, e := range events {
		byID[e.GetEventId()] = e
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT && e.GetEventId() < marker.GetEventId() &&
			e.GetEventTime().AsTime().After(from) {
			r.timedOut = e.GetEventTime().AsTime().Sub(from)
			r.waited = append(r.waited, kmsTimeoutType(e))
		}
	}
	done := byID[marker.GetMarkerRecordedEventAttributes().GetWorkflowTaskCompletedEventId()]
	if done == nil {
		return r, fmt.Errorf("the decision's marker %d names no workflow task", marker.GetEventId())
	}
	r.closed = true
	r.completed = marker.GetMarkerRecordedEventAttributes().GetFailure() == nil
	r.fromNext = done.GetEventTime().AsTime().Sub(from)
	r.handled = r.fromNext
	if started := byID[done.GetWorkflowTaskCompletedEventAttributes().GetStartedEventId()]; started != nil {
		r.resumed = started.GetEventTime().AsTime().Sub(from)
	}
	r.byNext = kmsWorkerOf(done.GetWorkflowTaskCompletedEventAttributes().GetIdentity(), pids) == kill+1
	return r, nil
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
