package eventlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/eventlog"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/postgres"
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

// gatedDetector is Temporal whose first signal to the detector waits for answer, and whose
// next ones hang until stop (a server catching up after an outage). feeding is closed when
// the first arrives.
type gatedDetector struct {
	*fakeTemporal
	feeding, answer, stop chan struct{}
	signals               atomic.Int32
}

func (g *gatedDetector) SignalWithStartWorkflow(ctx context.Context, id, signal string, arg any, opts client.StartWorkflowOptions,
	wf any, args ...any) (client.WorkflowRun, error) {
	if id == recoup.DetectorWorkflowID {
		if g.signals.Add(1) == 1 {
			close(g.feeding)
			<-g.answer
		} else {
			select {
			case <-g.stop:
			case <-ctx.Done():
			}
			return nil, errors.New("the detector's signal hung")
		}
	}
	return g.fakeTemporal.SignalWithStartWorkflow(ctx, id, signal, arg, opts, wf, args...)
}

// askTracer closes asked once a statement asking whether eventID was fed has returned.
type askTracer struct {
	eventID string
	asked   chan struct{}
	once    sync.Once
}

type askKey struct{}

func (a *askTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "detector_fed_at IS NOT NULL") && len(d.Args) == 1 && d.Args[0] == a.eventID {
		return context.WithValue(ctx, askKey{}, true)
	}
	return ctx
}

func (a *askTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if ctx.Value(askKey{}) != nil {
		a.once.Do(func() { close(a.asked) })
	}
}

// A run whose failure this process's feed loop fed in the first batch of a backlog starts
// once that batch is committed, not once the loop drained the backlog: the loop holds the
// feed for every batch, and its next batch hangs (a server catching up). The delivery slept
// until the loop's whole round ended, past its own deadline, and the start failed although
// the detector had heard of the failure.
func TestARunStartsOnceTheFeedLoopsBatchWithItsFailureCommitted(t *testing.T) {
	st := fakes.MustStore(t)
	tr := &askTracer{eventID: "evt_run", asked: make(chan struct{})}
	traced, err := postgres.Open(context.Background(), fakes.DatabaseURL(),
		postgres.Options{Schema: st.Pool().Config().ConnConfig.RuntimeParams["search_path"], Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(traced.Close)
	tmp := &gatedDetector{fakeTemporal: newFake(), feeding: make(chan struct{}), answer: make(chan struct{}), stop: make(chan struct{})}
	in := &eventlog.Ingestor{Store: traced, Temporal: tmp}
	mustRecord(t, in, spikeFailure("evt_run", "inv_1", t0))
	for i := range 1000 { // newer failures accepted while Temporal was down: a second batch
		mustRecord(t, in, spikeFailure(fmt.Sprintf("evt_later_%d", i), "inv_later", t0.Add(time.Duration(i+1)*time.Millisecond)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	looped := make(chan struct{})
	go func() { // the feed loop's round (RunDetectorFeed)
		defer close(looped)
		_, _, _ = in.FeedDetector(ctx)
	}()
	t.Cleanup(func() { close(tmp.stop); cancel(); <-looped })
	<-tmp.feeding // the loop holds the feed, its first batch (evt_run's) on the way
	go func() {
		<-tr.asked // the delivery found evt_run not fed yet and waits
		close(tmp.answer)
	}()
	_, err = in.DeliverPending(context.Background(), 1, nil) // inv_1, the oldest
	fed, ferr := st.DetectorFed(context.Background(), "evt_run")
	if got := tmp.got(); err != nil || len(got) != 1 {
		t.Fatalf("the run's failure was fed to the detector (%v, %v), yet its run did not start: delivery error %v, runs got %v", fed, ferr, err, got)
	}
}
