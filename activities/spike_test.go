package activities_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/spike"
	"github.com/recoup-dunning/recoup/internal/model/templates"
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
	f.det.Alerts, f.det.AlertEmail, f.det.Signaler = alerts, "oncall@shop.example", sig

	inc := spike.Incident{ID: "inc-t-1", Cohort: "bin=411111", Dimension: "bin", Value: "411111", Status: spike.Open,
		Severity: "critical", OpenedAt: now, OnsetAt: now.Add(-40 * time.Second), Failures: 12,
		Evidence: spike.Evidence{Window: time.Minute, Observed: 12, Expected: 0.2, Ratio: 60, PValue: 7e-18, Z: 26}}
	if _, err := f.det.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "opened", Incident: inc}}}); err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 1 || hooks[0]["type"] != "incident.opened" || hooks[0]["webhook-id"] != "incident-inc-t-1-opened-open" {
		t.Fatalf("alert webhooks = %v", hooks)
	}
	if n := f.sg.Accepted("incident-inc-t-1-opened-open"); n != 1 {
		t.Fatalf("alert emails = %d, want 1", n)
	}
	if subj, _ := f.sg.Last().JSON["subject"].(string); !strings.Contains(subj, "bin=411111") {
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
	if res, err := f.det.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "acknowledge", Incident: inc}}}); err != nil || res.Released != 0 {
		t.Fatalf("acknowledge released %d: %v", res.Released, err)
	}
	inc.Status = spike.Released
	for range 2 { // a retried activity releases nothing twice
		if _, err := f.det.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "release", Incident: inc}}}); err != nil {
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
	if _, err := f.det.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "opened", Incident: inc2}}}); err != nil {
		t.Fatal(err)
	}
	set := f.acts.Prompts()
	off := *set
	pol := *set.Policy
	pol.Spike.Enabled = false
	off.Policy = &pol
	f.acts.Prompts = func() *templates.Set { return &off }
	f.det.Prompts = f.acts.Prompts
	if got := hold("dunning-inv_d", "411111"); got != "" {
		t.Fatalf("held by %s with detection disabled", got)
	}
}

// Releasing held runs does not depend on alerting: with the alert webhook answering 503
// every time, an incident's runs are released once its new status is stored (by
// ReleaseIncidentHolds, and by the legacy RecordIncidents, which fails only after its
// releases); AlertIncidents fails, naming the webhook, and counts the provider error.
func TestReleaseDoesNotDependOnAlerting(t *testing.T) {
	f := newFixture(t)
	reg := withMetrics(f)
	ctx := context.Background()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	alerts, err := webhook.New(webhook.Config{URL: down.URL, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if err != nil {
		t.Fatal(err)
	}
	sig := &signals{sent: map[string][]recoup.ReleaseHold{}}
	f.det.Alerts, f.det.Signaler = alerts, sig

	hold := func(wf, bin string) string {
		t.Helper()
		res, err := f.acts.CheckHold(ctx, activities.HoldInput{WorkflowID: wf, CardBIN: bin, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return res.IncidentID
	}
	inc := spike.Incident{ID: "inc-t-1", Cohort: "bin=411111", Dimension: "bin", Value: "411111", Status: spike.Open,
		Severity: "major", OpenedAt: now, OnsetAt: now, Evidence: spike.Evidence{Window: time.Minute, Observed: 12, Expected: 0.2, Ratio: 60}}
	inc2 := inc
	inc2.ID, inc2.Cohort, inc2.Value = "inc-t-2", "bin=424242", "424242"
	if err := f.det.StoreIncidents(ctx, activities.StoreIncidentsInput{Incidents: []spike.Incident{inc, inc2}}); err != nil {
		t.Fatal(err)
	}
	if hold("dunning-inv_a", "411111") != inc.ID || hold("dunning-inv_b", "424242") != inc2.ID {
		t.Fatal("runs in the incidents' cohorts are not held")
	}
	err = f.det.AlertIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "opened", Incident: inc}}})
	if err == nil || !strings.Contains(err.Error(), "alert webhook for incident inc-t-1 opened") {
		t.Fatalf("alerting with the webhook down: %v, want an error naming the webhook and the incident", err)
	}
	if got := value(t, reg, "recoup_provider_errors_total", map[string]string{"provider": "webhook", "code": "503"}); got != 1 {
		t.Fatalf("webhook provider errors counted: %v, want 1", got)
	}

	inc.Status = spike.Cleared
	if err := f.det.StoreIncidents(ctx, activities.StoreIncidentsInput{Incidents: []spike.Incident{inc}}); err != nil {
		t.Fatal(err)
	}
	res, err := f.det.ReleaseIncidentHolds(ctx, activities.ReleaseInput{Incident: inc})
	if err != nil || res.Released != 1 || len(sig.sent["dunning-inv_a"]) != 1 {
		t.Fatalf("release: %+v, %v, signals %v; want the held run released", res, err, sig.sent)
	}
	if _, err := f.det.ReleaseIncidentHolds(ctx, activities.ReleaseInput{Incident: inc2}); err == nil || !strings.Contains(err.Error(), "still holds") {
		t.Fatalf("releasing an open incident: %v, want a refusal", err)
	}

	// The legacy activity: the release happens, then the failing alert fails it.
	inc2.Status = spike.Released
	_, err = f.det.RecordIncidents(ctx, activities.IncidentsInput{Events: []spike.Event{{Kind: "release", Incident: inc2}}})
	if err == nil || len(sig.sent["dunning-inv_b"]) != 1 {
		t.Fatalf("RecordIncidents with the webhook down: %v, signals %v; want the run released and the alert error", err, sig.sent)
	}
}

// A detector that is lost stops holding new runs within minutes, not max_hold: CheckHold
// holds no new run for an open incident the detector has not evaluated for 6 minutes (the
// policy's spike windows give 5), and holds again once it is evaluated.
func TestCheckHoldIgnoresIncidentOfLostDetector(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	inc := spike.Incident{ID: "inc-t-1", Cohort: "bin=411111", Dimension: "bin", Value: "411111", Status: spike.Open,
		Severity: "major", OpenedAt: now, OnsetAt: now}
	if err := f.det.StoreIncidents(ctx, activities.StoreIncidentsInput{Incidents: []spike.Incident{inc}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Pool().Exec(ctx, `UPDATE incidents SET evaluated_at = now() - interval '6 minutes'`); err != nil {
		t.Fatal(err)
	}
	hold := func(wf string) string {
		t.Helper()
		res, err := f.acts.CheckHold(ctx, activities.HoldInput{WorkflowID: wf, CardBIN: "411111", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return res.IncidentID
	}
	if got := hold("dunning-inv_a"); got != "" {
		t.Fatalf("a new run is held by %s, whose detector stopped evaluating it 6 minutes ago", got)
	}
	if err := f.det.StoreIncidents(ctx, activities.StoreIncidentsInput{Live: []string{inc.ID}}); err != nil {
		t.Fatal(err)
	}
	if got := hold("dunning-inv_b"); got != inc.ID {
		t.Fatalf("after the detector kept it live, a new run is held by %q, want %s", got, inc.ID)
	}
}
