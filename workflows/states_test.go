package workflows_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/workflows"
)

// rawQuery is the JSON a query answers with after d of workflow time, and the run's current
// details (what the Web UI shows) at that moment.
func (w *world) rawQuery(d time.Duration, raw *string, details *string) {
	w.env.RegisterDelayedCallback(func() {
		v, err := w.env.QueryWorkflow(recoup.QueryStatus)
		var msg json.RawMessage
		if err == nil {
			err = v.Get(&msg)
		}
		if err != nil {
			w.t.Errorf("query: %v", err)
			return
		}
		*raw = string(msg)
		m, err := w.env.QueryWorkflow("__temporal_workflow_metadata")
		if err != nil {
			w.t.Errorf("metadata query: %v", err)
			return
		}
		var meta sdkpb.WorkflowMetadata
		if err := m.Get(&meta); err != nil {
			w.t.Errorf("metadata: %v", err)
		}
		*details = meta.GetCurrentDetails()
	}, d)
}

// A paused run's status query carries no 0001-01-01 for times that are absent, callers
// still decode it, and its details say who paused it and that nothing happens until it is
// resumed (no step time that will not come); canceled through Temporal (the Web UI's
// Cancel), the run records canceled itself.
func TestPausedRunsQueryAndDetailsThenTemporalCancelRecordsCanceled(t *testing.T) {
	w := newWorld(t)
	w.update(time.Hour, recoup.UpdatePause, recoup.Pause{By: "alice", Reason: "customer called"})
	var raw, details string
	w.rawQuery(2*time.Hour, &raw, &details)
	w.env.RegisterDelayedCallback(func() { w.env.CancelWorkflow() }, 3*time.Hour)
	res, st := w.run()
	if strings.Contains(raw, "0001-01-01") || !strings.Contains(raw, `"status":"paused"`) {
		t.Errorf("status query of a paused run:\n%s\nwant no zero times", raw)
	}
	var decoded recoup.State
	if err := json.Unmarshal([]byte(raw), &decoded); err != nil || decoded.Status != recoup.StatusPaused || !decoded.NextActionAt.IsZero() {
		t.Errorf("the answer decodes as %+v, %v; want paused with no time for the next step", decoded, err)
	}
	if !strings.Contains(details, "Paused by alice until resumed: customer called") || strings.Contains(details, "step 2 at") {
		t.Errorf("details of the paused run:\n%s", details)
	}
	if res.Status != recoup.StatusCanceled || st.Status != recoup.StatusCanceled {
		t.Fatalf("canceled through Temporal: result %+v, state %s; want canceled", res, st.Status)
	}
	w.mustFinish(recoup.StatusCanceled)
}

// The detector's incidents query writes durations for people and an empty list as [].
func TestDetectorQueryWritesDurationsAsTextAndNoIncidentsAsAnEmptyList(t *testing.T) {
	w := newDetector(t)
	var raw string
	w.env.RegisterDelayedCallback(func() {
		v, err := w.env.QueryWorkflow(recoup.QueryIncidents)
		var msg json.RawMessage
		if err == nil {
			err = v.Get(&msg)
		}
		if err != nil {
			t.Errorf("query: %v", err)
		}
		raw = string(msg)
	}, 5*time.Minute)
	w.run(200)
	for _, want := range []string{`"incidents":[]`, `"short_window":"1m0s"`, `"max_hold":"`} {
		if !strings.Contains(raw, want) {
			t.Errorf("incidents query lacks %s:\n%s", want, raw)
		}
	}
	if strings.Contains(raw, "null") || strings.Contains(raw, "0001-01-01") {
		t.Errorf("incidents query has null or zero times:\n%s", raw)
	}
	var st workflows.DetectorStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil || st.Config.ShortWindow != workflows.Duration(time.Minute) {
		t.Errorf("decoded %+v, %v", st.Config, err)
	}
	// Answers written before (nanoseconds) still decode.
	var old workflows.Duration
	if err := json.Unmarshal([]byte("900000000000"), &old); err != nil || time.Duration(old) != 15*time.Minute {
		t.Errorf("nanoseconds decode as %v, %v", old, err)
	}
}
