package actions_test

import (
	"os"
	"path/filepath"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"

	"github.com/recoup-dunning/recoup/internal/actions"
)

func ev(t enumspb.EventType) *historypb.HistoryEvent { return &historypb.HistoryEvent{EventType: t} }

const (
	started   = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
	signaled  = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
	wftSched  = enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
	wftStart  = enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED
	wftDone   = enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
	marker    = enumspb.EVENT_TYPE_MARKER_RECORDED
	actSched  = enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
	timer     = enumspb.EVENT_TYPE_TIMER_STARTED
	completed = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
)

func events(ts ...enumspb.EventType) []*historypb.HistoryEvent {
	var es []*historypb.HistoryEvent
	for _, t := range ts {
		es = append(es, ev(t))
	}
	return es
}

func upsert(keys ...string) *historypb.HistoryEvent {
	f := map[string]*commonpb.Payload{}
	for _, k := range keys {
		f[k] = &commonpb.Payload{Data: []byte(`"x"`)}
	}
	return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
		Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{
			UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
				SearchAttributes: &commonpb.SearchAttributes{IndexedFields: f}}}}
}

func TestStartCountsOnceAndSignalWithStartIsOneAction(t *testing.T) {
	if got := actions.Of(events(started, wftSched, wftStart, wftDone, completed)).Total(); got != 1 {
		t.Errorf("a plain start: %d Actions, want 1", got)
	}
	c := actions.Of(events(started, signaled, wftSched, wftStart, wftDone, signaled, completed))
	if c.Started != 1 || c.Signals != 1 || c.Total() != 2 {
		t.Errorf("Signal-With-Start then one signal: %+v, want 1 start and 1 signal", c)
	}
	// A run started, then signaled: the signal follows the first workflow task's scheduling.
	if c := actions.Of(events(started, wftSched, signaled)); c.Signals != 1 {
		t.Errorf("start then signal: %+v, want the signal counted", c)
	}
}

func TestActivitiesCountEachScheduleAndEachRetry(t *testing.T) {
	st := &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED,
		Attributes: &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{
			ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{Attempt: 3}}}
	c := actions.Of([]*historypb.HistoryEvent{ev(started), ev(actSched), st, ev(actSched)})
	if c.Activities != 2 || c.Retries != 2 || c.Total() != 5 {
		t.Errorf("two activities, the first on its third attempt: %+v (total %d), want 2 + 2 retries", c, c.Total())
	}
}

func TestMarkersOfOneWorkflowTaskAreOneAction(t *testing.T) {
	c := actions.Of(events(started, wftSched, wftStart, wftDone, marker, marker, marker, actSched,
		wftSched, wftStart, wftDone, marker, timer))
	if c.Markers != 2 {
		t.Errorf("three markers in one task, one in the next: %d marker Actions, want 2", c.Markers)
	}
	la := &historypb.HistoryEvent{EventType: wftDone, Attributes: &historypb.HistoryEvent_WorkflowTaskCompletedEventAttributes{
		WorkflowTaskCompletedEventAttributes: &historypb.WorkflowTaskCompletedEventAttributes{
			MeteringMetadata: &commonpb.MeteringMetadata{NonfirstLocalActivityExecutionAttempts: 4}}}}
	c = actions.Of([]*historypb.HistoryEvent{ev(started), la, ev(marker)})
	if c.LARetries != 4 || c.Markers != 1 {
		t.Errorf("a local activity on its fifth attempt: %+v, want 1 marker Action and 4 retries", c)
	}
}

func TestUpsertsCountPerCommandAndChangeVersionIsFree(t *testing.T) {
	c := actions.Of([]*historypb.HistoryEvent{ev(started), upsert("A", "B", "C"), upsert("TemporalChangeVersion"), upsert("A")})
	if c.Upserts != 2 {
		t.Errorf("an upsert of three, GetVersion's, an upsert of one: %d, want 2", c.Upserts)
	}
	// TemporalChangeVersion together with another attribute is billed.
	if c := actions.Of([]*historypb.HistoryEvent{upsert("TemporalChangeVersion", "A")}); c.Upserts != 1 {
		t.Errorf("a mixed upsert: %d, want 1", c.Upserts)
	}
}

func TestTimersUpdatesChildrenAndOthers(t *testing.T) {
	reset := &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED,
		Attributes: &historypb.HistoryEvent_WorkflowTaskFailedEventAttributes{
			WorkflowTaskFailedEventAttributes: &historypb.WorkflowTaskFailedEventAttributes{Cause: enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW}}}
	failed := &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED,
		Attributes: &historypb.HistoryEvent_WorkflowTaskFailedEventAttributes{
			WorkflowTaskFailedEventAttributes: &historypb.WorkflowTaskFailedEventAttributes{Cause: enumspb.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE}}}
	es := append(events(timer, timer, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
		enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED, enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, enumspb.EVENT_TYPE_TIMER_FIRED), reset, failed)
	c := actions.Of(es)
	want := actions.Count{Timers: 2, Updates: 1, Children: 2, SignalsSent: 1, Other: 3}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if got := c.Add(actions.Count{Started: 1}).Total(); got != 10 {
		t.Errorf("Add then Total: %d, want 10", got)
	}
}

// A run recorded on a real dev server (workflows/testdata/recovered.json: a Signal-With-Start,
// four duplicate payment.failed and two retry results, PlanRun, CheckHold and the customer's
// history as local activities in the first task, decide, send and finish as activities, five
// upserts and two GetVersion upserts, one timer).
func TestRecordedHistory(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "workflows", "testdata", "recovered.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h historypb.History
	if err := (temporalproto.CustomJSONUnmarshalOptions{}).Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	want := actions.Count{Started: 1, Signals: 6, Activities: 3, Markers: 1, Timers: 1, Upserts: 5}
	if got := actions.Of(h.Events); got != want || got.Total() != 17 {
		t.Errorf("recovered.json: %+v (total %d), want %+v (17)", got, got.Total(), want)
	}
}
