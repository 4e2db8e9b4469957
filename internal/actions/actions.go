// Package actions counts the Temporal Cloud billable Actions a workflow run's event history
// shows, following Temporal Cloud's published definition of an Action
// (https://docs.temporal.io/cloud/actions, source docs/evaluate/cloud/actions.mdx of
// temporalio/documentation). It is pure: it reads a history and does no I/O.
//
// What a history shows, and how each is counted (the rule names are Count's fields):
//   - Started: each WORKFLOW_EXECUTION_STARTED is one Action (a client start, a
//     continue-as-new's new run, a child's start). A Signal-With-Start is one Action in
//     total: the signal written right after the started event (event 2, before the first
//     workflow task) is part of the start.
//   - Signals: every other WORKFLOW_EXECUTION_SIGNALED is one Action. A signal the run sends
//     (SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED) is billed in the signaled run's history;
//     it is counted here too (SignalsSent), as part of what this run costs.
//   - Activities: each ACTIVITY_TASK_SCHEDULED is one Action, and each retry one more (the
//     attempt of ACTIVITY_TASK_STARTED minus one).
//   - Markers: all RecordMarker commands of one workflow task (local activities, and
//     GetVersion's and SideEffect's markers, which are RecordMarker commands too) are one
//     Action; each non-first local-activity attempt (WORKFLOW_TASK_COMPLETED's
//     metering_metadata.nonfirst_local_activity_execution_attempts) one more.
//   - Timers: each TIMER_STARTED is one Action (the implicit timers of AwaitWithTimeout too).
//   - Upserts: each UPSERT_WORKFLOW_SEARCH_ATTRIBUTES is one Action however many attributes
//     it sets, except an upsert of TemporalChangeVersion alone (GetVersion's), which is
//     exempt. Search attributes given at the start are free.
//   - Updates: each WORKFLOW_EXECUTION_UPDATE_ACCEPTED is one Action (a rejected update is
//     billed too but never written to the history: not counted).
//   - Children: each START_CHILD_WORKFLOW_EXECUTION_INITIATED is two Actions.
//   - Other: WORKFLOW_EXECUTION_OPTIONS_UPDATED, a reset (WORKFLOW_TASK_FAILED with cause
//     RESET_WORKFLOW), NEXUS_OPERATION_SCHEDULED and NEXUS_OPERATION_CANCEL_REQUESTED are one
//     Action each.
//
// Not in a history, so not counted: queries, activity heartbeats that reach the server,
// workflow-task heartbeats (a local activity outliving its workflow task), rejected
// updates. WORKFLOW_EXECUTION_CONTINUED_AS_NEW itself is not counted: the new run's start is.
package actions

import (
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// changeVersionAttribute is the search attribute GetVersion upserts; its upserts are free.
const changeVersionAttribute = "TemporalChangeVersion"

// Count is a history's billable Actions by rule.
type Count struct {
	Started     int // workflow starts (continue-as-new's new run included)
	Signals     int // signals received (not the one of a Signal-With-Start)
	SignalsSent int // signals the run sent to other workflows
	Activities  int // activities scheduled
	Retries     int // activity attempts after the first
	Markers     int // workflow tasks that recorded markers (local activities, versions)
	LARetries   int // local-activity attempts after the first
	Timers      int
	Upserts     int // search-attribute upserts, TemporalChangeVersion alone excluded
	Updates     int // updates accepted
	Children    int // two per child workflow started
	Other       int // options updated, resets, Nexus operations
}

// Total is the number of billable Actions.
func (c Count) Total() int {
	return c.Started + c.Signals + c.SignalsSent + c.Activities + c.Retries + c.Markers + c.LARetries +
		c.Timers + c.Upserts + c.Updates + c.Children + c.Other
}

// Add sums two counts (a run's histories across continue-as-new).
func (c Count) Add(o Count) Count {
	return Count{Started: c.Started + o.Started, Signals: c.Signals + o.Signals, SignalsSent: c.SignalsSent + o.SignalsSent,
		Activities: c.Activities + o.Activities, Retries: c.Retries + o.Retries, Markers: c.Markers + o.Markers,
		LARetries: c.LARetries + o.LARetries, Timers: c.Timers + o.Timers, Upserts: c.Upserts + o.Upserts,
		Updates: c.Updates + o.Updates, Children: c.Children + o.Children, Other: c.Other + o.Other}
}

// Of counts the Actions of one run's history, events in order.
func Of(events []*historypb.HistoryEvent) Count {
	var c Count
	markerTask := false // the current workflow task's markers were counted
	for i, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			c.Started++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			if i == 1 && events[0].GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
				continue // Signal-With-Start: one Action with the start
			}
			c.Signals++
		case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
			c.SignalsSent++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			c.Activities++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			if a := e.GetActivityTaskStartedEventAttributes().GetAttempt(); a > 1 {
				c.Retries += int(a) - 1
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			markerTask = false
			c.LARetries += int(e.GetWorkflowTaskCompletedEventAttributes().GetMeteringMetadata().GetNonfirstLocalActivityExecutionAttempts())
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if !markerTask {
				c.Markers++
				markerTask = true
			}
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			c.Timers++
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			fields := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			if _, ok := fields[changeVersionAttribute]; ok && len(fields) == 1 {
				continue
			}
			c.Upserts++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			c.Updates++
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			c.Children += 2
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
			enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED, enumspb.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED:
			c.Other++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
			if e.GetWorkflowTaskFailedEventAttributes().GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW {
				c.Other++
			}
		}
	}
	return c
}
