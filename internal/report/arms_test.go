package report_test

import (
	"context"
	"testing"

	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/report/experiment"
)

// "LLM vs rules" used to take the first decision's decided_by. The model is not asked when
// the customer has no reachable channel, is over the contact cap, or the decline says wait:
// those runs are "rules" whatever the model would have done, and they are the runs least
// likely to recover. The rules arm is not a comparable group; a run whose first decision
// sent nothing must not be counted as the rules' treatment.
func TestRunsTheModelWasNeverAskedAreNotTheRulesArm(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	f.run("llm", "recovered", "paid another way", 0, 2*d)
	f.decision("llm", 1, "", "email", "friendly", "none", 0)
	f.exec(`UPDATE decisions SET decided_by = 'llm' WHERE workflow_id = 'llm'`)
	f.sent("llm", 1, "email", h)
	f.event("llm", "payment.recovered", "http", d)
	// No reachable channel at step 1: the rules "decided" to send nothing; never paid.
	f.run("unreachable", "exhausted", "", 0, 20*d)
	f.decision("unreachable", 1, "", "none", "friendly", "none", 0)
	f.exec(`UPDATE decisions SET decided_by = 'rules' WHERE workflow_id = 'unreachable'`)

	runs, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := experiment.Analyze(runs, experiment.Config{Now: since.AddDate(1, 0, 0), Window: report.DefaultWindow})
	for _, e := range a.Experiments {
		if e.Kind != experiment.KindDecidedBy {
			continue
		}
		for _, arm := range e.Arms {
			if arm.Name == "rules" && arm.Runs > 0 {
				t.Errorf("the rules arm counts %d run(s) whose first decision sent nothing (model never asked): %+v", arm.Runs, e.Comparisons)
			}
		}
	}
}

// marketing switched holdout.treatment from rules_plain to no_messages. The two
// control treatments are different experiments (plain reminders vs silence), but dunning_runs'
// holdout_treatment is not read: both are pooled into one "control" arm.
func TestControlTreatmentsAreNotPooled(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	for _, r := range []struct{ id, arm, treatment, outcome string }{
		{"plain", "control", "rules_plain", "recovered"},
		{"silent", "control", "no_messages", "exhausted"},
		{"full", "treatment", "", "recovered"},
	} {
		f.run(r.id, r.outcome, "paid another way", 0, 2*d)
		f.exec(`UPDATE dunning_runs SET holdout = $2, holdout_treatment = $3 WHERE workflow_id = $1`, r.id, r.arm, r.treatment)
		if r.outcome == "recovered" {
			f.event(r.id, "payment.recovered", "http", d)
		}
	}
	runs, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	arms := map[string]string{}
	for _, r := range runs {
		arms[r.WorkflowID] = r.Holdout
	}
	if arms["plain"] != "control:rules_plain" || arms["silent"] != "control:no_messages" || arms["full"] != "treatment" {
		t.Errorf("holdout arms = %v; want control:rules_plain, control:no_messages, treatment", arms)
	}
	a := experiment.Analyze(runs, experiment.Config{Now: since.AddDate(1, 0, 0), Window: report.DefaultWindow})
	for _, e := range a.Experiments {
		for _, arm := range e.Arms {
			if e.Kind == experiment.KindHoldout && arm.Runs > 1 && arm.Name == "control" {
				t.Errorf("one %q arm pools %d runs of the rules_plain and no_messages control treatments", arm.Name, arm.Runs)
			}
		}
	}
}

// run 1 of inv_re ended recovered on day 2; on day 5 billing reported the invoice
// failed again (the payment was reversed) and run 2 (episode 2) began, exhausted on day 20.
// Within one 28-day window the invoice is counted twice, once recovered: the report shows a
// 50% recovery for an invoice that was never paid.
func TestARecoveryUndoneWithinTheWindowIsNotARecovery(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	f.exec(`INSERT INTO invoices (invoice_id, customer_id, amount_minor, currency, status, first_failed_at, updated_at)
		VALUES ('inv_re', 'cus', 10000, 'usd', 'open', $1, $1)`, since)
	f.exec(`INSERT INTO dunning_runs (workflow_id, invoice_id, customer_id, outcome, reason, steps, started_at, ended_at)
		VALUES ('dunning-inv_re', 'inv_re', 'cus', 'recovered', 'paid another way', 1, $1, $2),
		       ('dunning-inv_re#2', 'inv_re', 'cus', 'exhausted', '', 4, $3, $4)`,
		since, since.Add(2*d), since.Add(5*d), since.Add(20*d))
	f.exec(`INSERT INTO events (event_id, type, source, invoice_id, customer_id, occurred_at, body)
		VALUES ('evt_re_paid', 'payment.recovered', 'http', 'inv_re', 'cus', $1, '{}'),
		       ('evt_re_failed', 'payment.failed', 'http', 'inv_re', 'cus', $2, '{}')`, since.Add(2*d), since.Add(5*d))
	runs, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	recovered := 0
	for _, r := range runs {
		if r.Recovered {
			recovered++
		}
	}
	if len(runs) != 1 {
		t.Errorf("one invoice within one window counted as %d runs", len(runs))
	}
	if recovered != 0 {
		t.Errorf("invoice paid, reversed 3 days later and never recovered: %d of %d runs counted recovered", recovered, len(runs))
	}
}

// A run is placed in the model-against-rules comparison by its first decision at which the
// model was asked and answered: "rules" when its answer was refused and the rules decided,
// "llm" when it was used — even if an earlier step sent nothing without asking it — and out
// of the comparison when the model was never asked (no model configured: no answer recorded).
func TestTheComparisonTakesTheFirstDecisionTheModelAnswered(t *testing.T) {
	st := fakes.MustStore(t)
	f := attrFixture{fixture{t, st.Pool()}}
	for _, id := range []string{"refused", "later-llm", "no-model"} {
		f.run(id, "exhausted", "", 0, 20*d)
	}
	f.decision("refused", 1, "", "email", "friendly", "none", 0)
	f.exec(`UPDATE decisions SET decided_by = 'rules', inputs = '{"schema": 1, "model_refusal": "no"}' WHERE workflow_id = 'refused'`)
	f.decision("later-llm", 1, "", "none", "friendly", "none", 0)
	f.decision("later-llm", 2, "", "email", "firm", "none", 0)
	f.exec(`UPDATE decisions SET decided_by = CASE step WHEN 1 THEN 'rules' ELSE 'llm' END, inputs = '{"schema": 1}' WHERE workflow_id = 'later-llm'`)
	f.decision("no-model", 1, "", "email", "friendly", "none", 0)
	f.exec(`UPDATE decisions SET decided_by = 'rules', inputs = '{"schema": 1}' WHERE workflow_id = 'no-model'`)

	runs, err := report.ExperimentRuns(context.Background(), st.Pool(), since, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range runs {
		got[r.WorkflowID] = r.DecidedBy
	}
	want := map[string]string{"refused": "rules", "later-llm": "llm", "no-model": ""}
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			t.Errorf("run %s: DecidedBy %q (found %v), want %q", id, g, ok, w)
		}
	}
}
