package eventlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
)

// stallingDetector is Temporal whose first signal to the detector is answered and whose
// next ones hang until their deadline (a server catching up, an overloaded frontend).
type stallingDetector struct {
	*fakeTemporal
	answered int
}

func (s *stallingDetector) SignalWithStartWorkflow(ctx context.Context, id, signal string, arg any, opts client.StartWorkflowOptions,
	wf any, args ...any) (client.WorkflowRun, error) {
	if id == recoup.DetectorWorkflowID {
		if s.answered > 0 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		s.answered++
	}
	return s.fakeTemporal.SignalWithStartWorkflow(ctx, id, signal, arg, opts, wf, args...)
}

// A run starts once its own failure was fed to the detector, not once the log's whole
// backlog was: after an outage the failure is the oldest of 1,001 unfed events; its batch is
// answered, the next hangs until its deadline (a server catching up). awaitFed used to drain
// the backlog before it looked at its event, and the start failed.
func TestARunStartsOnceItsOwnFailureWasFed(t *testing.T) {
	st := fakes.MustStore(t)
	tmp := &stallingDetector{fakeTemporal: newFake()}
	in := &eventlog.Ingestor{Store: st, Temporal: tmp}
	mustRecord(t, in, spikeFailure("evt_run", "inv_1", t0))
	for i := range 1000 { // newer failures accepted while Temporal was down
		mustRecord(t, in, spikeFailure(fmt.Sprintf("evt_later_%d", i), "inv_later", t0.Add(time.Duration(i+1)*time.Millisecond)))
	}
	_, err := in.DeliverPending(context.Background(), 1, nil) // inv_1, the oldest
	fed, ferr := st.DetectorFed(context.Background(), "evt_run")
	if got := tmp.got(); err != nil || len(got) != 1 {
		t.Fatalf("the run's failure was fed to the detector (%v, %v), yet its run did not start: delivery error %v, runs got %v", fed, ferr, err, got)
	}
}

// Failures accepted concurrently by more requests than the store has connections are all
// delivered: a delivery holding a claim (a connection) asks whether its failure was fed on
// that connection, and Accept feeds before it claims. Deliveries used to hold every
// connection of the pool with their claims while each waited for another connection to ask,
// and first touches stopped until their 10 s delivery budget ran out (found by the
// first-touch benchmark: 430 of 500 runs started, then none).
func TestMoreConcurrentFailuresThanConnectionsAreAllDelivered(t *testing.T) {
	st := fakes.MustStore(t) // 8 connections
	in := &eventlog.Ingestor{Store: st, Temporal: newFake()}
	const n = 24
	results := make(chan error, n)
	for i := range n {
		go func() {
			res, err := in.Accept(context.Background(), spikeFailure(fmt.Sprintf("evt_c%d", i), fmt.Sprintf("inv_c%d", i), t0), "test")
			if err == nil && !res.Delivered {
				err = fmt.Errorf("event %d recorded but not delivered: %s", i, res.Note)
			}
			results <- err
		}()
	}
	for range n {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
}
