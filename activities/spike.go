package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"golang.org/x/sync/errgroup"

	"go.temporal.io/api/serviceerror"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/email"
	"github.com/recoup-dunning/recoup/internal/spike"
	"github.com/recoup-dunning/recoup/internal/store"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// Signaler signals workflows (a Temporal client.Client).
type Signaler interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// SpikeConfig returns the failure-spike detector's configuration from the policy in force.
func (a *Activities) SpikeConfig(ctx context.Context) (spike.Config, error) {
	return a.Prompts().Policy.Spike, nil
}

// HoldInput is a run's failure as the detector sees it.
type HoldInput struct {
	WorkflowID  string
	Gateway     string
	CardBIN     string
	Country     string
	FailureCode string
	AmountMinor int64
	Now         time.Time
}

// HoldResult says whether the run holds its first message, and for how long at most.
type HoldResult struct {
	IncidentID string
	Cohort     string
	Evidence   string
	MaxHold    time.Duration
}

// CheckHold holds the run when an open failure-spike incident matches its failure (see
// store.HoldIfIncident: atomic with the incident ending, so no hold is missed by a release).
func (a *Activities) CheckHold(ctx context.Context, in HoldInput) (HoldResult, error) {
	cfg := a.Prompts().Policy.Spike
	if !cfg.Enabled {
		return HoldResult{}, nil
	}
	vals := map[string]string{}
	r := spike.Record{Gateway: in.Gateway, BIN: in.CardBIN, Country: in.Country, Code: in.FailureCode,
		AmountBucket: spike.AmountBucket(in.AmountMinor)}
	for _, d := range cfg.Dimensions {
		vals[d] = r.Value(d)
	}
	inc, err := a.Store.HoldIfIncident(ctx, store.HoldKey{WorkflowID: in.WorkflowID, Values: vals, At: in.Now})
	if err != nil || inc.ID == "" {
		return HoldResult{}, err
	}
	res := HoldResult{IncidentID: inc.ID, Cohort: inc.Cohort, Evidence: inc.Evidence.String(), MaxHold: cfg.MaxHold}
	a.Metrics.RunHeld()
	a.logger(ctx).Info("run holds its first message for a failure-spike incident", "incident", inc.ID, "cohort", res.Cohort)
	return res, nil
}

// IncidentsInput carries what the detector must record: incidents opened, escalated,
// cleared or acted on by an operator.
type IncidentsInput struct {
	Events []spike.Event
}

// IncidentsResult says how many held runs were released.
type IncidentsResult struct {
	Released int
}

// RecordIncidents persists the detector's incidents, alerts on them (log, outbound webhook,
// email when configured) and releases the runs held by incidents that stopped holding.
// Every part is idempotent, so a retry repeats nothing a receiver would see twice (the
// webhook carries a stable webhook-id; the email a stable idempotency key).
func (a *Activities) RecordIncidents(ctx context.Context, in IncidentsInput) (IncidentsResult, error) {
	var res IncidentsResult
	for _, ev := range in.Events {
		inc := ev.Incident
		if err := a.Store.SaveIncident(ctx, inc); err != nil {
			return res, err
		}
		if err := a.alert(ctx, ev); err != nil {
			return res, err
		}
		if spike.Holding(inc.Status) {
			continue
		}
		n, err := a.releaseHolds(ctx, inc)
		res.Released += n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// releaseHolds signals every run the incident still holds (16 at a time: an incident may
// hold thousands) and marks each released once its signal is accepted, so a retry after a
// timeout continues where this attempt stopped.
func (a *Activities) releaseHolds(ctx context.Context, inc spike.Incident) (int, error) {
	runs, err := a.Store.HeldRuns(ctx, inc.ID)
	if err != nil {
		return 0, err
	}
	var released atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, wf := range runs {
		g.Go(func() error {
			err := a.Signaler.SignalWorkflow(gctx, wf, "", recoup.SignalReleaseHold, recoup.ReleaseHold{
				IncidentID: inc.ID, Status: inc.Status, By: "spike-detector", Reason: "incident " + inc.ID + " " + inc.Status})
			var notFound *serviceerror.NotFound
			if err != nil && !errors.As(err, &notFound) { // a run that ended holds nothing
				return fmt.Errorf("release %s: %w", wf, err)
			}
			if err := a.Store.ReleaseHold(gctx, wf, time.Now()); err != nil {
				return err
			}
			if n := released.Add(1); n%100 == 0 && activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, n)
			}
			return nil
		})
	}
	err = g.Wait()
	if n := released.Load(); n > 0 {
		a.logger(ctx).Info("released held runs", "incident", inc.ID, "status", inc.Status, "runs", n)
	}
	return int(released.Load()), err
}

func (a *Activities) alert(ctx context.Context, ev spike.Event) error {
	inc := ev.Incident
	title := fmt.Sprintf("Recoup incident %s %s: %s failures spiking (%s)", inc.ID, ev.Kind, inc.Cohort, inc.Severity)
	a.logger(ctx).Warn("failure-spike incident", "kind", ev.Kind, "incident", inc.ID, "cohort", inc.Cohort,
		"status", inc.Status, "severity", inc.Severity, "evidence", inc.Evidence.String(),
		"detection_latency", inc.OpenedAt.Sub(inc.OnsetAt).String())
	a.Metrics.Incident(ev.Kind, inc.Severity, inc.OpenedAt.Sub(inc.OnsetAt))
	if a.Alerts != nil && a.Alerts.Enabled() {
		err := a.Alerts.Send(ctx, webhook.Event{ID: "incident-" + inc.ID + "-" + ev.Kind + "-" + inc.Status, Type: "incident." + ev.Kind, Payload: inc}, time.Now())
		if err != nil {
			a.Metrics.ProviderError("webhook", err)
			return fmt.Errorf("alert webhook: %w", err)
		}
	}
	if a.AlertEmail != "" && a.Email != nil {
		body := strings.Join([]string{title, "",
			"Evidence: " + inc.Evidence.String(),
			"Peak: " + inc.Peak.String(),
			"Status: " + inc.Status + " · onset " + inc.OnsetAt.UTC().Format(time.RFC3339) + " · flagged " + inc.OpenedAt.UTC().Format(time.RFC3339),
			"Failures attributed: " + fmt.Sprint(inc.Failures),
			"", "Dunning runs in this cohort hold their first message while the incident is open.",
			"List: starter incidents · Release: starter incidents release " + inc.ID}, "\n")
		_, err := a.Email.Send(ctx, email.Message{To: a.AlertEmail, Subject: title, Text: body,
			IdempotencyKey: "incident-" + inc.ID + "-" + ev.Kind + "-" + inc.Status, Categories: []string{"recoup-incident"}})
		if err != nil {
			a.Metrics.ProviderError("sendgrid", err)
			return fmt.Errorf("alert email: %w", err)
		}
	}
	return nil
}
