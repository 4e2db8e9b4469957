package activities_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/spike"
	"github.com/recoup-dunning/recoup/internal/templates"
	"github.com/recoup-dunning/recoup/internal/webhook"
)

// signals records the signals the activities send; runs in gone have ended.
type signals struct {
	mu   sync.Mutex
	sent map[string][]recoup.ReleaseHold
	gone map[string]bool
}

func (s *signals) SignalWorkflow(_ context.Context, wf, _, name string, arg any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name != recoup.SignalReleaseHold {
		panic("unexpected signal " + name)
	}
	if s.gone[wf] {
		return serviceerror.NewNotFound("workflow execution already completed")
	}
	s.sent[wf] = append(s.sent[wf], arg.(recoup.ReleaseHold))
	return nil
}

// Incidents are recorded, alerted by a signed webhook and an email, hold the runs whose
// failure matches (and only those), and release them exactly once when they stop holding.
func TestIncidentsHoldAndRelease(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var hooks []map[string]any
	srv := billingReceiver(t, secret, &hooks)
	alerts, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	sig := &signals{sent: map[string][]recoup.ReleaseHold{}, gone: map[string]bool{"dunning-inv_gone": true}}
	f.acts.Alerts, f.acts.AlertEmail, f.acts.Signaler = alerts, "oncall@shop.example", sig

	inc := spike.Incident{ID: "inc-t-1", Cohort: "bin=411111", Dimension: "bin", Value: "411111", Status: spike.Open,
		Severity: "critical", OpenedAt: now, OnsetAt: now.Add(-40 * time.Second), Failures: 12,
		Evidence: spike.Evidence{Window: time.Minute, Observed: 12, Expected: 0.2, Ratio: 60, PValue: 7e-18, Z: 26}}
	if _, err := f.acts.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "opened", Incident: inc}}}); err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 1 || hooks[0]["type"] != "incident.opened" || hooks[0]["webhook-id"] != "incident-inc-t-1-opened-open" {
		t.Fatalf("alert webhooks = %v", hooks)
	}
	if n := f.sg.count("incident-inc-t-1-opened-open"); n != 1 {
		t.Fatalf("alert emails = %d, want 1", n)
	}
	if subj, _ := f.sg.last["subject"].(string); !strings.Contains(subj, "bin=411111") {
		t.Fatalf("alert email subject %q does not name the cohort", subj)
	}

	hold := func(wf, bin string) string {
		t.Helper()
		res, err := f.acts.CheckHold(ctx, activities.HoldInput{WorkflowID: wf, CardBIN: bin, Gateway: "stripe",
			Country: "DE", FailureCode: "card_declined", AmountMinor: 4900, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if res.IncidentID != "" && (res.MaxHold != 24*time.Hour || res.Cohort != "bin=411111" || !strings.Contains(res.Evidence, "12 failures")) {
			t.Fatalf("hold %+v: want max hold 24h, the cohort and the evidence", res)
		}
		return res.IncidentID
	}
	if got := hold("dunning-inv_a", "411111"); got != inc.ID {
		t.Fatalf("a run in the cohort is held by %q, want %s", got, inc.ID)
	}
	if got := hold("dunning-inv_gone", "411111"); got != inc.ID {
		t.Fatalf("second run held by %q", got)
	}
	if got := hold("dunning-inv_b", "424242"); got != "" {
		t.Fatalf("a run outside the cohort is held by %s", got)
	}
	if incs, held, err := f.st.Incidents(ctx, false, 10); err != nil || len(incs) != 1 || held[inc.ID] != 2 {
		t.Fatalf("incidents %+v held %v, %v", incs, held, err)
	}

	// An acknowledgement keeps the holds; a release ends them, once.
	inc.Status = spike.Acknowledged
	if res, err := f.acts.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "acknowledge", Incident: inc}}}); err != nil || res.Released != 0 {
		t.Fatalf("acknowledge released %d: %v", res.Released, err)
	}
	inc.Status = spike.Released
	for range 2 { // a retried activity releases nothing twice
		if _, err := f.acts.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "release", Incident: inc}}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := sig.sent["dunning-inv_a"]; len(got) != 1 || got[0].IncidentID != inc.ID || got[0].Status != spike.Released {
		t.Fatalf("release signals to the held run = %+v, want exactly one", got)
	}
	if _, held, _ := f.st.Incidents(ctx, true, 10); held[inc.ID] != 0 {
		t.Fatalf("%d runs still held after the release", held[inc.ID])
	}
	if got := hold("dunning-inv_c", "411111"); got != "" {
		t.Fatalf("a run after the release is held by %s", got)
	}

	// Detection can be switched off in the policy: nothing holds.
	inc2 := inc
	inc2.ID, inc2.Status = "inc-t-2", spike.Open
	if _, err := f.acts.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "opened", Incident: inc2}}}); err != nil {
		t.Fatal(err)
	}
	set := f.acts.Prompts()
	off := *set
	pol := *set.Policy
	pol.Spike.Enabled = false
	off.Policy = &pol
	f.acts.Prompts = func() *templates.Set { return &off }
	if got := hold("dunning-inv_d", "411111"); got != "" {
		t.Fatalf("held by %s with detection disabled", got)
	}
}
