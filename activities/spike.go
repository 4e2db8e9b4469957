package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"go.temporal.io/api/serviceerror"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/internal/postgres"
	"github.com/recoup-dunning/recoup/internal/sendgrid"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// Signaler signals workflows (a Temporal client.Client).
type Signaler interface {
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
}

// SpikeConfig returns the failure-spike detector's configuration from the policy in force.
func (a *DetectorActivities) SpikeConfig(ctx context.Context) (spike.Config, error) {
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

// CheckHold holds the run when an open failure-spike incident that a live detector maintains
// matches its failure (see postgres.HoldIfIncident: atomic with the incident ending, so no hold
// is missed by a release; an incident the detector has not evaluated within
// spike.Config.LiveWithin holds nothing new).
func (a *DunningActivities) CheckHold(ctx context.Context, in HoldInput) (HoldResult, error) {
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
	inc, err := a.Store.HoldIfIncident(ctx, postgres.HoldKey{WorkflowID: in.WorkflowID, Values: vals, At: in.Now, LiveWithin: cfg.LiveWithin()})
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

// RecordIncidents persists the detector's incidents, releases the runs held by incidents
// that stopped holding and alerts on them (log, outbound webhook, email when configured).
// It is the detector's one activity before the "detector-holds-end" change; releasing runs
// does not depend on alerting (an alert that fails fails the activity after the releases,
// and the retry repeats nothing a receiver would see twice: the webhook carries a stable
// webhook-id, the email a stable idempotency key).
func (a *DetectorActivities) RecordIncidents(ctx context.Context, in IncidentsInput) (IncidentsResult, error) {
	var res IncidentsResult
	for _, ev := range in.Events {
		if err := a.Store.SaveIncident(ctx, ev.Incident); err != nil {
			return res, err
		}
	}
	for _, ev := range in.Events {
		if spike.Holding(ev.Incident.Status) {
			continue
		}
		n, err := a.releaseHolds(ctx, ev.Incident)
		res.Released += n
		if err != nil {
			return res, err
		}
	}
	return res, a.AlertIncidents(ctx, in)
}

// StoreIncidentsInput is what the detector stores: incidents as they are now, and the
// holding incidents it evaluated (so they keep holding new runs; see CheckHold).
type StoreIncidentsInput struct {
	Incidents []spike.Incident
	Live      []string
}

// StoreIncidents persists the detector's incidents and records that it evaluated the live
// ones now. Idempotent.
func (a *DetectorActivities) StoreIncidents(ctx context.Context, in StoreIncidentsInput) error {
	for _, inc := range in.Incidents {
		if err := a.Store.SaveIncident(ctx, inc); err != nil {
			return err
		}
	}
	return a.Store.TouchIncidents(ctx, in.Live)
}

// IncidentActionInput is an operator's action on an incident, with the incident as the
// action leaves it: stored before the detector applies it.
type IncidentActionInput struct {
	Action   string
	By       string
	Incident spike.Incident
}

// StoreIncidentAction persists an operator's action: the incident's new status and note.
func (a *DetectorActivities) StoreIncidentAction(ctx context.Context, in IncidentActionInput) error {
	if err := a.Store.SaveIncident(ctx, in.Incident); err != nil {
		return err
	}
	a.logger(ctx).Info("incident action stored", "incident", in.Incident.ID, "action", in.Action, "status", in.Incident.Status)
	return nil
}

// ReleaseInput names an incident that stopped holding (released, cleared or a false alarm).
type ReleaseInput struct {
	Incident spike.Incident
}

// ReleaseIncidentHolds releases every run the incident still holds; it needs the incident's
// status stored first (postgres.HeldRuns lists the runs of an incident that stopped holding).
// Idempotent: a retry continues where an attempt stopped.
func (a *DetectorActivities) ReleaseIncidentHolds(ctx context.Context, in ReleaseInput) (IncidentsResult, error) {
	if spike.Holding(in.Incident.Status) {
		return IncidentsResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("incident %s is %s: it still holds its runs", in.Incident.ID, in.Incident.Status), "BadInput", nil)
	}
	n, err := a.releaseHolds(ctx, in.Incident)
	return IncidentsResult{Released: n}, err
}

// IncidentRecovery is what a detector starting over takes over (postgres.Recovery; named here so
// that workflows import no adapter).
type IncidentRecovery = postgres.Recovery

// RecoverIncidents reads what a detector starting over takes over (postgres.RecoverIncidents).
func (a *DetectorActivities) RecoverIncidents(ctx context.Context) (IncidentRecovery, error) {
	r, err := a.Store.RecoverIncidents(ctx)
	if err == nil && (len(r.Incidents) > 0 || len(r.Unreleased) > 0) {
		a.logger(ctx).Info("recovering failure-spike incidents", "active", len(r.Incidents), "unreleased", len(r.Unreleased))
	}
	return r, err
}

// releaseHolds signals every run the incident still holds (16 at a time: an incident may
// hold thousands) and marks each released once its signal is accepted, so a retry after a
// timeout continues where this attempt stopped.
func (a *DetectorActivities) releaseHolds(ctx context.Context, inc spike.Incident) (int, error) {
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

// AlertIncidents alerts on the detector's incident events: a log line, the incident metric,
// the outbound webhook and the email, when configured. Each channel is tried for every
// event; a failing one is counted (provider errors) and fails the activity, whose retries
// repeat nothing a receiver would see twice (stable webhook-id and email idempotency key).
// Nothing else waits for it: the detector stores incidents and releases runs on its own.
func (a *DetectorActivities) AlertIncidents(ctx context.Context, in IncidentsInput) error {
	first := !activity.IsActivity(ctx) || activity.GetInfo(ctx).Attempt <= 1
	var errs []error
	for _, ev := range in.Events {
		if err := a.alert(ctx, ev, first); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.logger(ctx).Error("could not alert on failure-spike incidents; retrying", "error", err)
		return err
	}
	return nil
}

func (a *DetectorActivities) alert(ctx context.Context, ev spike.Event, first bool) error {
	inc := ev.Incident
	title := fmt.Sprintf("Recoup incident %s %s: %s failures spiking (%s)", inc.ID, ev.Kind, inc.Cohort, inc.Severity)
	if first {
		a.logger(ctx).Warn("failure-spike incident", "kind", ev.Kind, "incident", inc.ID, "cohort", inc.Cohort,
			"status", inc.Status, "severity", inc.Severity, "evidence", inc.Evidence.String(),
			"detection_latency", inc.OpenedAt.Sub(inc.OnsetAt).String())
		a.Metrics.Incident(ev.Kind, inc.Severity, inc.OpenedAt.Sub(inc.OnsetAt))
	}
	var errs []error
	if a.Alerts != nil && a.Alerts.Enabled() {
		err := a.Alerts.Send(ctx, webhook.Event{ID: "incident-" + inc.ID + "-" + ev.Kind + "-" + inc.Status, Type: "incident." + ev.Kind, Payload: inc}, time.Now())
		if err != nil {
			a.Metrics.ProviderError("webhook", err)
			errs = append(errs, fmt.Errorf("alert webhook for incident %s %s: %w", inc.ID, ev.Kind, err))
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
		_, err := a.Email.Send(ctx, sendgrid.Message{To: a.AlertEmail, Subject: title, Text: body,
			IdempotencyKey: "incident-" + inc.ID + "-" + ev.Kind + "-" + inc.Status, Categories: []string{"recoup-incident"}})
		if err != nil {
			a.Metrics.ProviderError("sendgrid", err)
			errs = append(errs, fmt.Errorf("alert email for incident %s %s: %w", inc.ID, ev.Kind, err))
		}
	}
	return errors.Join(errs...)
}
