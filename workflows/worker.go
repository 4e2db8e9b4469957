package workflows

import (
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// NewWorker creates a worker on the dunning task queue with DunningWorkflow and every
// activity of acts registered.
func NewWorker(c client.Client, acts *activities.Activities) worker.Worker {
	w := worker.New(c, recoup.TaskQueue, worker.Options{
		// On SIGTERM, running activities get this long to finish (a send records its outcome).
		WorkerStopTimeout: 30 * time.Second,
	})
	w.RegisterWorkflowWithOptions(DunningWorkflow, workflow.RegisterOptions{Name: recoup.WorkflowType})
	w.RegisterActivity(acts)
	return w
}
