package workflows_test

import (
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/codec"
	"github.com/recoup-dunning/recoup/worker/workertest"
	"github.com/recoup-dunning/recoup/workflows"
)

// TestReplayRecordedHistories replays histories recorded from real dev-server runs
// (worker/e2e_test.go with RECOUP_RECORD_HISTORIES=1). A change to DunningWorkflow that
// would break running workflows fails here; such changes need workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d recorded histories in testdata, want at least 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.DunningWorkflow, workflow.RegisterOptions{Name: recoup.WorkflowType})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

// A history encrypted with key k1 still replays after the keys were rotated to k2 (k1 kept
// for decryption), and does not without k1.
func TestReplayEncryptedHistoryAfterKeyRotation(t *testing.T) {
	file := filepath.Join("testdata", "encrypted", "recovered_k1.json")
	replay := func(keys string) error {
		c, err := codec.ParseKeys(keys)
		if err != nil {
			t.Fatal(err)
		}
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: codec.DataConverter(c)})
		if err != nil {
			t.Fatal(err)
		}
		r.RegisterWorkflowWithOptions(workflows.DunningWorkflow, workflow.RegisterOptions{Name: recoup.WorkflowType})
		return r.ReplayWorkflowHistoryFromJSONFile(nil, file)
	}
	if err := replay(workertest.TestKeysRotated); err != nil {
		t.Fatalf("replay with rotated keys: %v", err)
	}
	k2only := strings.Split(workertest.TestKeysRotated, ",")[0]
	if err := replay(k2only); err == nil {
		t.Fatal("replay without the key the history was written with succeeded")
	}
}

// TestReplayDetectorHistories replays the failure-spike detector's recorded histories
// (worker/spike_e2e_test.go with RECOUP_RECORD_HISTORIES=1): its state is rebuilt from the
// signals alone, so a change to the detector or to package spike that would decide
// differently on the same records fails here.
func TestReplayDetectorHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "detector", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded detector histories in testdata/detector (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.SpikeDetectorWorkflow, workflow.RegisterOptions{Name: recoup.DetectorWorkflowType})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
