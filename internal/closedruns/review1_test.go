package closedruns_test

// Hostile-review test (branch review1): the reconciler's visibility window.

import (
	"context"
	"log/slog"
	"regexp"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/recoup-dunning/recoup/internal/closedruns"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// lagging is a Temporal client whose visibility lists a terminated run only from its
// third list call on (the visibility queue is backed up, as it is during the incident in
// which ops terminate runs), honouring the query's CloseTime bound as the server does.
type lagging struct {
	client.Client
	closedAt time.Time
	calls    int
}

var closeAfter = regexp.MustCompile(`CloseTime > '([^']+)'`)

func (l *lagging) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	l.calls++
	if l.calls < 3 {
		return &workflowservice.ListWorkflowExecutionsResponse{}, nil
	}
	if m := closeAfter.FindStringSubmatch(req.GetQuery()); m != nil {
		since, _ := time.Parse(time.RFC3339, m[1])
		if !l.closedAt.After(since) {
			return &workflowservice.ListWorkflowExecutionsResponse{}, nil
		}
	}
	return &workflowservice.ListWorkflowExecutionsResponse{Executions: []*workflowpb.WorkflowExecutionInfo{{
		Execution:  &commonpb.WorkflowExecution{WorkflowId: "dunning-inv_lag", RunId: "run-lag"},
		FirstRunId: "run-lag", CloseTime: timestamppb.New(l.closedAt),
		Status: enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED,
	}}}, nil
}

type oneEvent struct{ ev *historypb.HistoryEvent }

func (o *oneEvent) HasNext() bool { return o.ev != nil }
func (o *oneEvent) Next() (*historypb.HistoryEvent, error) {
	ev := o.ev
	o.ev = nil
	return ev, nil
}

func (l *lagging) GetWorkflowHistory(context.Context, string, string, bool, enumspb.HistoryEventFilterType) client.HistoryEventIterator {
	return &oneEvent{ev: &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, EventTime: timestamppb.New(l.closedAt),
		Attributes: &historypb.HistoryEvent_WorkflowExecutionTerminatedEventAttributes{WorkflowExecutionTerminatedEventAttributes: &historypb.WorkflowExecutionTerminatedEventAttributes{
			Reason: "cleanup", Identity: "ops"}}}}
}

// A run terminated 20 minutes before visibility lists it (more than the 10-minute lag the
// reconciler allows) is never recorded by a worker that has run a round since: each round
// only asks for runs closed after its previous start minus 10 minutes.
func TestReview1_ARunVisibilityListsLateIsStillRecorded(t *testing.T) {
	st := fakes.MustStore(t)
	ctx := context.Background()
	tc := &lagging{closedAt: time.Now().Add(-20 * time.Minute)}
	rec := &closedruns.Reconciler{Temporal: tc, Store: st, Logger: slog.New(slog.DiscardHandler)}
	for range 4 {
		if _, err := rec.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := st.FindRunOutcome(ctx, "dunning-inv_lag", "run-lag"); err != nil || !ok {
		t.Fatalf("the terminated run that visibility listed late was never recorded (%v): %d list calls", err, tc.calls)
	}
}
