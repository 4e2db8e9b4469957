package workflows

import (
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
)

// Tuning is the worker's capacity configuration. Zero values keep the SDK's defaults.
type Tuning struct {
	MaxConcurrentActivities    int     // WORKER_MAX_CONCURRENT_ACTIVITIES
	MaxConcurrentWorkflowTasks int     // WORKER_MAX_CONCURRENT_WORKFLOW_TASKS
	ActivityPollers            int     // WORKER_ACTIVITY_POLLERS
	WorkflowPollers            int     // WORKER_WORKFLOW_POLLERS
	EmailsPerSecond            float64 // EMAIL_SENDS_PER_SECOND: across all workers (0: unlimited)
	SMSPerSecond               float64 // SMS_SENDS_PER_SECOND: across all workers (0: unlimited)
	// StickyCacheSize bounds how many workflow executions the process keeps in memory
	// between workflow tasks (WORKER_STICKY_CACHE_SIZE; 0: the SDK's default, 10,000). A
	// run evicted from the cache is replayed from its history on its next task.
	StickyCacheSize int
	// PollerAutoscaling lets the SDK scale the number of pollers on the server's feedback
	// (WORKER_POLLER_AUTOSCALING=true); WorkflowPollers and ActivityPollers are then the
	// maximums (0: the SDK's default maximum, 100).
	PollerAutoscaling bool
}

// NewWorkers creates the workers of one process: the dunning task queue with both workflows
// and their activities, the detector's own queue, and one worker per send queue (the dunning activities) whose
// activities-per-second limit the server enforces across all replicas.
//
// A non-zero t.StickyCacheSize sets the SDK's process-wide workflow cache size, which must
// happen before any worker of the process starts.
func NewWorkers(c client.Client, acts *activities.Activities, t Tuning) []worker.Worker {
	if t.StickyCacheSize > 0 {
		worker.SetStickyWorkflowCacheSize(t.StickyCacheSize)
	}
	base := activities.WithKeepAlive(worker.Options{
		MaxConcurrentActivityExecutionSize:     t.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: t.MaxConcurrentWorkflowTasks,
		MaxConcurrentActivityTaskPollers:       t.ActivityPollers,
		MaxConcurrentWorkflowTaskPollers:       t.WorkflowPollers,
		// On SIGTERM, running activities get this long to finish (a send records its outcome).
		WorkerStopTimeout: 30 * time.Second,
		// WithKeepAlive: every activity scheduled with a heartbeat timeout is heartbeated while
		// it runs, also during the stop timeout, so that the server re-dispatches a dead
		// worker's activities and never a live one's.
	})
	if t.PollerAutoscaling {
		base.MaxConcurrentWorkflowTaskPollers, base.MaxConcurrentActivityTaskPollers = 0, 0
		base.WorkflowTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{MaximumNumberOfPollers: t.WorkflowPollers})
		base.ActivityTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{MaximumNumberOfPollers: t.ActivityPollers})
	}
	main := worker.New(c, recoup.TaskQueue, base)
	main.RegisterWorkflowWithOptions(DunningWorkflow, workflow.RegisterOptions{Name: recoup.WorkflowType})
	// A detector started before it had a queue of its own runs here until it continues as new.
	main.RegisterWorkflowWithOptions(SpikeDetectorWorkflow, workflow.RegisterOptions{Name: recoup.DetectorWorkflowType})
	main.RegisterActivity(acts.Dunning)
	main.RegisterActivity(acts.Detector)
	// The detector's own queue: its tasks are taken by pollers of their own, not behind the
	// runs' (a burst of failures starts thousands of runs while the detector must keep up).
	det := worker.New(c, recoup.DetectorTaskQueue, base)
	det.RegisterWorkflowWithOptions(SpikeDetectorWorkflow, workflow.RegisterOptions{Name: recoup.DetectorWorkflowType})
	det.RegisterActivity(acts.Detector)
	workers := []worker.Worker{main, det}
	for _, q := range []struct {
		name string
		rate float64
	}{{recoup.EmailTaskQueue, t.EmailsPerSecond}, {recoup.SMSTaskQueue, t.SMSPerSecond}} {
		opts := base
		opts.TaskQueueActivitiesPerSecond = q.rate
		opts.DisableWorkflowWorker = true
		w := worker.New(c, q.name, opts)
		w.RegisterActivity(acts.Dunning)
		workers = append(workers, w)
	}
	return workers
}
