package workflows_test

import (
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/workflows"
)

// Every tuning the configuration can produce builds workers (the SDK panics on options
// that contradict each other, e.g. a poller count together with poller autoscaling).
func TestNewWorkersAcceptsTuning(t *testing.T) {
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tune := range []workflows.Tuning{
		{},
		{WorkflowPollers: 8, ActivityPollers: 8, MaxConcurrentActivities: 50, MaxConcurrentWorkflowTasks: 50},
		{PollerAutoscaling: true},
		{PollerAutoscaling: true, WorkflowPollers: 8, ActivityPollers: 16, EmailsPerSecond: 10},
	} {
		if ws := workflows.NewWorkers(c, &activities.Activities{Dunning: &activities.DunningActivities{}, Detector: &activities.DetectorActivities{}}, tune); len(ws) != 4 {
			t.Fatalf("%+v: %d workers, want 4 (dunning, detector, email, sms)", tune, len(ws))
		}
	}
}
