package closedruns

import (
	"slices"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/recoup-dunning/recoup/internal/postgres"
)

// How a run closed outside the workflow is told from its close event: terminated (with who
// and why; a reset says so), timed out, failed.
func TestCloseEventsNameTheTrueOutcomeWithWhoAndWhy(t *testing.T) {
	for _, c := range []struct {
		name                   string
		ev                     *historypb.HistoryEvent
		outcome, by, reasonHas string
	}{
		{"terminated from the Web UI", &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes{WorkflowExecutionTerminatedEventAttributes: &historypb.WorkflowExecutionTerminatedEventAttributes{
				Reason: "cleanup", Identity: "webui-alice"}}}, "terminated", "webui-alice", "cleanup"},
		{"reset", &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes{WorkflowExecutionTerminatedEventAttributes: &historypb.WorkflowExecutionTerminatedEventAttributes{
				Reason: "bad deploy", Identity: "history-resetter"}}}, "terminated", "history-resetter", "reset: bad deploy (the workflow goes on in a new run)"},
		{"run timeout", &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT}, "timed_out", "", "run timeout"},
		{"failed", &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			Attributes: &historypb.HistoryEvent_WorkflowExecutionFailedEventAttributes{WorkflowExecutionFailedEventAttributes: &historypb.WorkflowExecutionFailedEventAttributes{
				Failure: &failurepb.Failure{Message: "panic: boom"}}}}, "failed", "", "panic: boom"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var o Outcome
			describe(&o, c.ev)
			if o.WorkflowGoesOn != (c.name == "reset") {
				t.Errorf("workflow goes on: %v", o.WorkflowGoesOn)
			}
			if o.Outcome != c.outcome || o.ClosedBy != c.by || !strings.Contains(o.Reason, c.reasonHas) {
				t.Fatalf("outcome %q by %q (%q), want %q by %q with %q", o.Outcome, o.ClosedBy, o.Reason, c.outcome, c.by, c.reasonHas)
			}
			if !slices.Contains(postgres.RunOutcomeKinds, o.Outcome) {
				t.Fatalf("outcome %q is not one run_outcomes accepts", o.Outcome)
			}
		})
	}
}
