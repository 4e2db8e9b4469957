package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/spike"
)

// live lists the incidents that hold runs (the detector keeps them live in the store).
func (d *detector) live() []string {
	var ids []string
	for _, in := range d.det.S.Incidents {
		if spike.Holding(in.Status) {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// flush stores the pending events' incidents, as they are now, and keeps the holding ones
// live; then it alerts on the events and releases the runs of the incidents that stopped
// holding, neither waiting for the other.
func (d *detector) flush(ctx workflow.Context) error {
	events := d.pending
	d.pending = nil
	if err := d.store(ctx, events); err != nil {
		d.pending = append(events, d.pending...)
		return err
	}
	if len(events) > 0 {
		d.queueAlert(ctx, events)
	}
	for _, ev := range events {
		if !spike.Holding(ev.Incident.Status) {
			d.queueRelease(ev.Incident)
		}
	}
	d.startReleases(ctx)
	return nil
}

func (d *detector) store(ctx workflow.Context, events []spike.Event) error {
	if err := d.storing.Lock(ctx); err != nil {
		return err
	}
	defer d.storing.Unlock()
	var incs []spike.Incident
	for _, ev := range events {
		in := ev.Incident
		if cur := d.det.Incident(in.ID); cur != nil {
			in = *cur // as it is now: a later action or clearing must not be overwritten
		}
		if !slices.ContainsFunc(incs, func(x spike.Incident) bool { return x.ID == in.ID }) {
			incs = append(incs, in)
		}
	}
	summary := "Keep the open incidents live"
	if len(events) > 0 {
		summary = fmt.Sprintf("Store %d incident event(s): %s %s", len(events), events[0].Kind, events[0].Incident.Cohort)
	}
	d.acts++
	return workflow.ExecuteActivity(withSummary(ctx, dbActivity, summary), detectorActs.StoreIncidents,
		activities.StoreIncidentsInput{Incidents: incs, Live: d.live()}).Get(ctx, nil)
}

func (d *detector) queueAlert(ctx workflow.Context, events []spike.Event) {
	p := &PendingAlert{Events: events, Since: workflow.Now(ctx)}
	d.alerts = append(d.alerts, p)
	d.startAlert(ctx, p)
}

// startAlert delivers an alert in the background, retrying it until AlertFor has passed
// since it was first tried; a failure is logged (and counted by the activity).
func (d *detector) startAlert(ctx workflow.Context, p *PendingAlert) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { d.alerts = slices.DeleteFunc(d.alerts, func(x *PendingAlert) bool { return x == p }) }()
		left := AlertFor - workflow.Now(ctx).Sub(p.Since)
		if left <= 0 {
			d.log.Error("gave up alerting on incident events", "incident", p.Events[0].Incident.ID, "kind", p.Events[0].Kind, "since", p.Since)
			return
		}
		opts := alertActivity
		opts.ScheduleToCloseTimeout = left
		d.acts++
		summary := fmt.Sprintf("Alert on %d incident event(s): %s %s", len(p.Events), p.Events[0].Kind, p.Events[0].Incident.ID)
		if err := workflow.ExecuteActivity(withSummary(ctx, opts, summary), detectorActs.AlertIncidents, activities.IncidentsInput{Events: p.Events}).Get(ctx, nil); err != nil {
			d.log.Error("gave up alerting on incident events", "incident", p.Events[0].Incident.ID, "kind", p.Events[0].Kind, "error", err)
		}
	})
}

// queueRelease notes that an incident's held runs are to be released.
func (d *detector) queueRelease(inc spike.Incident) {
	if !slices.ContainsFunc(d.releases, func(x spike.Incident) bool { return x.ID == inc.ID }) {
		d.releases = append(d.releases, inc)
	}
}

// startReleases releases, in the background, the runs of every queued incident whose
// release is not in flight.
func (d *detector) startReleases(ctx workflow.Context) {
	for _, inc := range d.releases {
		if !d.releasing[inc.ID] {
			workflow.Go(ctx, func(ctx workflow.Context) {
				if _, err := d.release(ctx, inc); err != nil {
					d.log.Error("could not release held runs; retrying on the next tick", "incident", inc.ID, "error", err)
				}
			})
		}
	}
}

// release releases the runs inc holds (one release per incident at a time); once done,
// the incident leaves the queue.
func (d *detector) release(ctx workflow.Context, inc spike.Incident) (int, error) {
	if d.releasing[inc.ID] {
		return 0, nil
	}
	d.releasing[inc.ID] = true
	defer delete(d.releasing, inc.ID)
	var res activities.IncidentsResult
	d.acts++
	err := workflow.ExecuteActivity(withSummary(ctx, dbActivity, "Release the runs held by "+inc.ID+" ("+inc.Status+")"),
		detectorActs.ReleaseIncidentHolds, activities.ReleaseInput{Incident: inc}).Get(ctx, &res)
	if err != nil {
		return res.Released, err
	}
	d.releases = slices.DeleteFunc(d.releases, func(x spike.Incident) bool { return x.ID == inc.ID })
	return res.Released, nil
}
