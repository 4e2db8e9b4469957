package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/money"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// diffCommand is `starter prompts diff`.
func diffCommand(a *app) *cobra.Command {
	var o diffOptions
	var since string
	cmd := &cobra.Command{
		Use:   "diff --since 30d [flags] DIR",
		Short: "Re-decide the recorded decisions with the prompt set in DIR, offline: what would change",
		Long: `Decide again, offline, every decision recorded since --since with the prompt set in DIR, and
show how many would change channel, tone or incentive (with examples), how many runs would
change holdout arm, the incentive cost before and after per currency against the plans'
budgets, every guardrail violation the new prompt set provokes (grouped by rule), and the
decisions that cannot be re-decided. DIR is linted first; a problem stops the diff.

Each customer's decisions are re-decided oldest first, and the yearly incentive budgets count
what the customer was offered before the period plus what the new decisions offered before,
so a budget bites as it would have. Each run is in the holdout arm the new policy assigns
its invoice, as for a new run.

By default no model is called: the rules decide again, and each recorded model answer is
checked against the new guardrails and policy. --ask-model asks the configured model
(OPENAI_API_KEY, or OPENAI_BASE_URL and OPENAI_MODEL, as for the worker) again with the new
prompts, once per re-decided decision: it says first how many calls it will make, and
--limit defaults to 200 then. Nothing is sent, no decision is written and billing is not
called.`,
		Example: "  starter prompts diff --since 30d ./my-prompts\n  starter prompts diff --since 72h --json ./my-prompts\n  starter prompts diff --since 7d --ask-model --limit 100 ./my-prompts",
		Args:    exactArgs(1, "the prompt set's DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseSince(since)
			if err != nil {
				return wrongArgs(cmd, "--since: "+err.Error())
			}
			if o.askModel && !cmd.Flags().Changed("limit") {
				o.limit = askModelLimit
			}
			if o.limit < 1 {
				return wrongArgs(cmd, fmt.Sprintf("--limit must be at least 1, got %d", o.limit))
			}
			o.dir, o.since = args[0], time.Now().UTC().Add(-d)
			return diffPrompts(cmd.Context(), a.d, o, a.stdout, a.stderr)
		},
	}
	cmd.Flags().StringVar(&since, "since", "30d", "decisions recorded in this last span: a Go duration (72h) or days (30d)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the diff as JSON")
	cmd.Flags().IntVar(&o.limit, "limit", offlineLimit, fmt.Sprintf("at most this many decisions, the newest (default %d with --ask-model)", askModelLimit))
	cmd.Flags().BoolVar(&o.askModel, "ask-model", false, "ask the configured model again with the new prompts (one call per re-decided decision) instead of re-checking its recorded answers")
	return cmd
}

// The default --limit: offline, and with --ask-model (each decision is a call to the
// production model, billed and rate-limited).
const (
	offlineLimit  = 10000
	askModelLimit = 200
)

var daysRe = regexp.MustCompile(`^(\d+)d(.*)$`)

// parseSince reads a span: a Go duration, optionally led by whole days ("30d", "1d12h").
func parseSince(s string) (time.Duration, error) {
	var d time.Duration
	rest := strings.TrimSpace(s)
	if m := daysRe.FindStringSubmatch(rest); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			return 0, fmt.Errorf("%q: too many days", s)
		}
		d, rest = time.Duration(n)*24*time.Hour, m[2]
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration like 30d, 72h or 90m", s)
		}
		d += r
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: the span must be positive", s)
	}
	return d, nil
}

type diffOptions struct {
	dir      string
	since    time.Time
	limit    int
	asJSON   bool
	askModel bool
}

// The examples shown per kind of change and per violation rule.
const diffExamples = 3

// promptDiff is the outcome of `starter prompts diff` (its --json form).
type promptDiff struct {
	PromptDir     string    `json:"prompt_dir"`
	PromptVersion string    `json:"prompt_version"`
	PolicyVersion string    `json:"policy_version"`
	Since         time.Time `json:"since"`
	Mode          string    `json:"mode"` // "model" (--ask-model) or "recorded answer"
	ModeNote      string    `json:"mode_note"`
	ModelCalls    int       `json:"model_calls_at_most"` // with --ask-model: one per re-decidable decision
	Decisions     int       `json:"decisions"`           // read
	// When --limit cut the period: the decisions in it, how many older ones were left out,
	// and when the oldest one read was recorded.
	InPeriod       int            `json:"decisions_in_period"`
	Limit          int            `json:"limit"`
	LeftOut        int            `json:"left_out_by_limit"`
	ReadFrom       *time.Time     `json:"read_from,omitempty"`
	Redecided      int            `json:"redecided"`       // decided again
	RedecidedBy    map[string]int `json:"redecided_by"`    // activities.RedecidedBy* → count
	NotRedecidable map[string]int `json:"not_redecidable"` // reason → count
	Changed        diffChanges    `json:"changed"`
	Examples       []diffExample  `json:"examples"`
	Cost           []diffCost     `json:"incentive_cost"`
	ExtensionDays  [2]int         `json:"extension_days"`    // offered before, after
	BudgetWithdraw [2]int         `json:"budget_withdrawn"`  // incentives the yearly budget withdrew, before and after
	Budgets        []diffBudget   `json:"budgets"`           // of the new policy
	Violations     []diffRule     `json:"violations"`        // provoked by the new prompt set
	ViolationTotal int            `json:"violations_total"`  // decisions with at least one
	RecordedTotal  int            `json:"recorded_violated"` // decisions that had at least one when recorded
}

type diffChanges struct {
	Channel   int            `json:"channel"`
	Tone      int            `json:"tone"`
	Incentive int            `json:"incentive"`
	Any       int            `json:"any"`           // channel, tone or incentive
	Channels  map[string]int `json:"channel_moves"` // "email → sms" → count
	// Arm counts the decisions whose run the new policy's holdout puts in another arm than
	// the one recorded (Arms: "off → control" → count); not part of Any.
	Arm  int            `json:"arm"`
	Arms map[string]int `json:"arm_moves"`
}

type diffExample struct {
	Change     string `json:"change"` // channel, tone, incentive
	WorkflowID string `json:"workflow_id"`
	Step       int    `json:"step"`
	Before     string `json:"before"`
	After      string `json:"after"`
}

type diffCost struct {
	Currency    string `json:"currency"`
	Decisions   int    `json:"decisions"`
	Before      int    `json:"discounts_before"`
	After       int    `json:"discounts_after"`
	BeforeMinor int64  `json:"cost_before_minor"`
	AfterMinor  int64  `json:"cost_after_minor"`
	BeforeText  string `json:"cost_before"`
	AfterText   string `json:"cost_after"`
}

type diffBudget struct {
	Plan string `json:"plan"`
	recoupCaps
}

type recoupCaps struct {
	MaxDiscountPercent     int `json:"max_discount_percent"`
	DiscountBudgetPerYear  int `json:"discount_budget_percent_per_year"`
	MaxExtensionDays       int `json:"max_extension_days"`
	ExtensionBudgetPerYear int `json:"extension_budget_days_per_year"`
}

type diffRule struct {
	Rule     string        `json:"rule"`
	Count    int           `json:"count"`
	Recorded int           `json:"recorded"` // how often the recorded decisions had it
	Examples []diffExample `json:"examples"` // Before: empty; After: the violation
}

// diffPrompts re-decides the recorded decisions with the prompt set in o.dir and prints what
// would change. It writes nothing.
func diffPrompts(ctx context.Context, d *deps, o diffOptions, stdout, stderr io.Writer) error {
	if fi, err := os.Stat(o.dir); err != nil || !fi.IsDir() {
		return usageError{fmt.Sprintf("prompts diff: %q is not a prompt directory (it does not exist or is not a directory)", o.dir)}
	}
	if problems := templates.Lint(o.dir); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		return usageError{fmt.Sprintf("prompts diff: %d problems in the prompt set %s; fix them (starter prompts lint %s) first", len(problems), o.dir, o.dir)}
	}
	set, err := templates.Load(o.dir)
	if err != nil {
		return usageError{err.Error()}
	}
	r := activities.Redecider{Set: set, PaymentURL: d.cfg.PaymentURL, ContactCap: d.cfg.ContactCap}
	if o.askModel {
		if !d.cfg.LLMEnabled() {
			return usageError{"prompts diff: --ask-model needs a model configured (OPENAI_API_KEY, or OPENAI_BASE_URL and OPENAI_MODEL); without it the recorded answers are re-checked"}
		}
		if r.LLM, err = openai.New(d.cfg.LLM); err != nil {
			return err
		}
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	rows, err := st.RecordedDecisions(ctx, o.since, o.limit)
	if err != nil {
		return err
	}
	calls := 0
	for _, row := range rows {
		if row.Inputs != nil {
			calls++
		}
	}
	if r.LLM != nil {
		fmt.Fprintf(stderr, "prompts diff: asking model %s again: at most %d calls (one per re-decidable decision of %d read; --limit %d)\n",
			r.LLM.Model(), calls, len(rows), o.limit)
	}
	out, err := buildDiff(ctx, r, set, rows, d.cfg.LLMEnabled())
	if err != nil {
		return err
	}
	if r.LLM != nil {
		out.ModelCalls = calls
	}
	out.PromptDir, out.Since, out.InPeriod, out.Limit = o.dir, o.since, len(rows), o.limit
	if len(rows) == o.limit {
		// The limit may have cut the period: say how much of it was read.
		if out.InPeriod, err = st.CountRecordedDecisions(ctx, o.since); err != nil {
			return err
		}
		if out.LeftOut = max(0, out.InPeriod-len(rows)); out.LeftOut > 0 {
			oldest := rows[len(rows)-1].CreatedAt.UTC() // newest first
			out.ReadFrom = &oldest
		}
	}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	writeDiff(stdout, out)
	return nil
}

// The reason a decision recorded before migration 00017 cannot be re-decided.
const notRecorded = "recorded before inputs were kept"

// buildDiff decides rows again with r and compares. Rows are re-decided oldest first: each
// customer's yearly budgets count what was offered before the period (recorded with the
// customer's first decision in it) plus what the new decisions offered since, not what was
// offered under the old prompts. modelConfigured only words the mode note.
func buildDiff(ctx context.Context, r activities.Redecider, set *templates.Set, rows []postgres.RecordedDecision, modelConfigured bool) (promptDiff, error) {
	out := promptDiff{PromptVersion: set.Version, PolicyVersion: set.PolicyVersion, Decisions: len(rows),
		RedecidedBy: map[string]int{}, NotRedecidable: map[string]int{}, Changed: diffChanges{Channels: map[string]int{}, Arms: map[string]int{}}}
	out.Mode = activities.RedecidedByRecorded
	switch {
	case r.LLM != nil:
		out.Mode, out.ModeNote = activities.RedecidedByModel, fmt.Sprintf("model %s asked again with the new prompts (--ask-model); the rules decide when its answer is refused", r.LLM.Model())
	case modelConfigured:
		out.ModeNote = "offline, no model call: each recorded model answer is checked against the new guardrails and policy (--ask-model asks the model again); the rules decide the rest"
	default:
		out.ModeNote = "no model configured: each recorded model answer is checked against the new guardrails and policy (set OPENAI_API_KEY and pass --ask-model to ask the model again); the rules decide the rest"
	}
	costs := map[string]*diffCost{}
	runCostsBy := map[string]*runCost{} // by workflow
	rules := map[string]*diffRule{}
	budgets := map[string]*offerTally{} // by customer
	rows = slices.Clone(rows)           // newest first: oldest first
	slices.SortStableFunc(rows, func(a, b postgres.RecordedDecision) int { return a.CreatedAt.Compare(b.CreatedAt) })
	for _, row := range rows {
		if row.Inputs == nil {
			out.NotRedecidable[notRecorded]++
			continue
		}
		rec, err := activities.ParseRecordedInputs(row.Inputs)
		if err != nil {
			out.NotRedecidable[strings.TrimPrefix(err.Error(), activities.ErrNotRedecidable.Error()+": ")]++
			continue
		}
		b := budgets[row.CustomerID]
		if b == nil {
			b = &offerTally{before: rec.Offered, given: map[string]int{}}
			budgets[row.CustomerID] = b
		}
		asRecorded := rec
		rec.Offered = b.offered()
		re, err := r.Decide(ctx, rec)
		rec = asRecorded
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return out, err
			}
			out.NotRedecidable["the new prompt set could not decide it: "+err.Error()]++
			continue
		}
		b.add(re.Decision)
		out.Redecided++
		out.RedecidedBy[re.Decider]++
		compare(&out, row, rec, re.Decision)
		addCost(costs, runCostsBy, row.WorkflowID, rec, re.Decision)
		for i, inc := range []recoup.Incentive{rec.Decided.Incentive, re.Decision.Incentive} {
			if inc.Kind == recoup.IncentiveExtensionDays {
				out.ExtensionDays[i] += inc.Value
			}
		}
		tallyViolations(&out, rules, row, rec.Decided.Violations, re.Violations)
	}
	runCosts(costs, runCostsBy)
	for _, c := range slices.Sorted(maps.Keys(costs)) {
		v := costs[c]
		v.BeforeText, v.AfterText = money.Format(v.BeforeMinor, c, "en-US"), money.Format(v.AfterMinor, c, "en-US")
		out.Cost = append(out.Cost, *v)
	}
	for _, g := range rules {
		if g.Count > 0 {
			out.Violations = append(out.Violations, *g)
		}
	}
	slices.SortFunc(out.Violations, func(a, b diffRule) int { return cmp.Or(b.Count-a.Count, strings.Compare(a.Rule, b.Rule)) })
	for _, plan := range slices.Sorted(maps.Keys(set.Policy.Plans)) {
		c := set.Policy.Plans[plan]
		out.Budgets = append(out.Budgets, diffBudget{Plan: plan, recoupCaps: recoupCaps{MaxDiscountPercent: c.MaxDiscountPercent,
			DiscountBudgetPerYear: c.DiscountBudgetPerYear, MaxExtensionDays: c.MaxExtensionDays, ExtensionBudgetPerYear: c.ExtensionBudgetPerYear}})
	}
	return out, nil
}

// offerTally is what a customer's yearly incentive budget reads during a diff: what was
// offered in the year before the customer's first decision in the period, plus what the new
// decisions have offered since.
type offerTally struct {
	before map[string]int
	given  map[string]int
}

func (t *offerTally) offered() map[string]int {
	out := maps.Clone(t.before)
	if out == nil {
		out = map[string]int{}
	}
	for k, v := range t.given {
		out[k] += v
	}
	return out
}

// add counts the incentive d offers (a step that sends nothing offers nothing).
func (t *offerTally) add(d recoup.Decision) {
	if d.Channel.Valid() && d.Incentive.Value > 0 &&
		(d.Incentive.Kind == recoup.IncentiveDiscountPercent || d.Incentive.Kind == recoup.IncentiveExtensionDays) {
		t.given[d.Incentive.Kind] += d.Incentive.Value
	}
}

// tallyViolations groups the new decision's violations by rule (with examples) and counts
// the recorded decision's beside them.
func tallyViolations(out *promptDiff, rules map[string]*diffRule, row postgres.RecordedDecision, recorded, now []string) {
	if len(now) > 0 {
		out.ViolationTotal++
	}
	if len(recorded) > 0 {
		out.RecordedTotal++
	}
	rule := func(v string) *diffRule {
		k := violationRule(v)
		if rules[k] == nil {
			rules[k] = &diffRule{Rule: k}
		}
		return rules[k]
	}
	for _, v := range now {
		g := rule(v)
		g.Count++
		if len(g.Examples) < diffExamples {
			g.Examples = append(g.Examples, diffExample{Change: "violation", WorkflowID: row.WorkflowID, Step: row.Step, After: v})
		}
		if isBudget(v) {
			out.BudgetWithdraw[1]++
		}
	}
	for _, v := range recorded {
		rule(v).Recorded++
		if isBudget(v) {
			out.BudgetWithdraw[0]++
		}
	}
}

// compare counts what changed between the recorded choice and the new decision.
func compare(out *promptDiff, row postgres.RecordedDecision, rec activities.RecordedInputs, d recoup.Decision) {
	before := rec.Decided
	changed := false
	example := func(change, b, a string) {
		changed = true
		n := 0
		for _, e := range out.Examples {
			if e.Change == change {
				n++
			}
		}
		if n < diffExamples {
			out.Examples = append(out.Examples, diffExample{Change: change, WorkflowID: row.WorkflowID, Step: row.Step, Before: b, After: a})
		}
	}
	if before.Channel != d.Channel {
		out.Changed.Channel++
		out.Changed.Channels[fmt.Sprintf("%s → %s", before.Channel, d.Channel)]++
		example("channel", string(before.Channel), string(d.Channel))
	}
	if before.Tone != d.Tone {
		out.Changed.Tone++
		example("tone", before.Tone, d.Tone)
	}
	if incentiveText(before.Incentive) != incentiveText(d.Incentive) {
		out.Changed.Incentive++
		example("incentive", incentiveText(before.Incentive), incentiveText(d.Incentive))
	}
	if changed {
		out.Changed.Any++
	}
	if rec.Holdout != d.Holdout {
		out.Changed.Arm++
		out.Changed.Arms[fmt.Sprintf("%s → %s", armText(rec.Holdout), armText(d.Holdout))]++
		n := 0
		for _, e := range out.Examples {
			if e.Change == "arm" {
				n++
			}
		}
		if n < diffExamples {
			out.Examples = append(out.Examples, diffExample{Change: "arm", WorkflowID: row.WorkflowID, Step: row.Step, Before: armText(rec.Holdout), After: armText(d.Holdout)})
		}
	}
}

// armText names a holdout arm, "off" for none.
func armText(arm string) string {
	if arm == "" {
		return "off"
	}
	return arm
}

func incentiveText(i recoup.Incentive) string {
	if i.Kind == "" || i.Kind == recoup.IncentiveNone {
		return recoup.IncentiveNone
	}
	return fmt.Sprintf("%s %d", i.Kind, i.Value)
}

// runCost is what one run's re-decided steps offered: its largest discount before and after.
type runCost struct {
	cur           string
	amountMinor   int64
	before, after int // percent
}

// addCost counts the decision's discount (a percentage of the amount due) before and after,
// and keeps the run's largest: a run costs once, as the report counts it (runCosts).
func addCost(costs map[string]*diffCost, runs map[string]*runCost, workflowID string, rec activities.RecordedInputs, d recoup.Decision) {
	cur := strings.ToUpper(rec.Decide.Currency)
	c := costs[cur]
	if c == nil {
		c = &diffCost{Currency: cur}
		costs[cur] = c
	}
	c.Decisions++
	r := runs[workflowID]
	if r == nil {
		r = &runCost{cur: cur}
		runs[workflowID] = r
	}
	r.amountMinor = max(r.amountMinor, rec.Decide.AmountMinor)
	if i := rec.Decided.Incentive; i.Kind == recoup.IncentiveDiscountPercent {
		c.Before++
		r.before = max(r.before, i.Value)
	}
	if i := d.Incentive; i.Kind == recoup.IncentiveDiscountPercent {
		c.After++
		r.after = max(r.after, i.Value)
	}
}

// runCosts adds each run's cost to its currency's: the amount due × the run's largest
// discount / 100, rounded down — the report's incentive cost (report.ExperimentRuns), so that
// an unchanged prompt set costs in the diff what it costs on the page however often a run
// repeated an offer.
func runCosts(costs map[string]*diffCost, runs map[string]*runCost) {
	for _, r := range runs {
		c := costs[r.cur]
		c.BeforeMinor += r.amountMinor * int64(r.before) / 100
		c.AfterMinor += r.amountMinor * int64(r.after) / 100
	}
}

var (
	quotedRe = regexp.MustCompile(`"[^"]*"`)
	digitsRe = regexp.MustCompile(`\d+`)
)

// violationRule is a violation with its particulars (quoted text, figures) blanked, so that
// violations of one rule group together.
func violationRule(v string) string {
	return digitsRe.ReplaceAllString(quotedRe.ReplaceAllString(v, `"…"`), "N")
}

func isBudget(v string) bool {
	return strings.HasPrefix(v, "yearly ") && strings.Contains(v, " budget of plan ")
}

func writeDiff(w io.Writer, o promptDiff) {
	fmt.Fprintf(w, "prompt set %s: version %s (policy %s); decisions recorded since %s\n",
		o.PromptDir, o.PromptVersion, o.PolicyVersion, o.Since.Format(time.RFC3339))
	if o.LeftOut > 0 {
		fmt.Fprintf(w, "--limit %d left out the %d oldest of the period's %d decisions: the ones read start at %s, not %s; "+
			"yearly budgets count what the left-out decisions offered as recorded (raise --limit or shorten --since)\n",
			o.Limit, o.LeftOut, o.InPeriod, o.ReadFrom.Format(time.RFC3339), o.Since.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "mode: %s\n", o.ModeNote)
	if o.Mode == activities.RedecidedByModel {
		fmt.Fprintf(w, "model calls: at most %d\n", o.ModelCalls)
	}
	var by []string
	for _, k := range slices.Sorted(maps.Keys(o.RedecidedBy)) {
		by = append(by, fmt.Sprintf("%s %d", k, o.RedecidedBy[k]))
	}
	notN := 0
	for _, n := range o.NotRedecidable {
		notN += n
	}
	fmt.Fprintf(w, "decisions: %d read, %d re-decided (%s), %d not re-decidable\n", o.Decisions, o.Redecided, strings.Join(by, ", "), notN)
	for _, k := range slices.Sorted(maps.Keys(o.NotRedecidable)) {
		fmt.Fprintf(w, "  %d %s\n", o.NotRedecidable[k], k)
	}
	var moves []string
	for _, k := range slices.Sorted(maps.Keys(o.Changed.Channels)) {
		moves = append(moves, fmt.Sprintf("%s: %d", k, o.Changed.Channels[k]))
	}
	fmt.Fprintf(w, "\nwould change:\n  channel    %d", o.Changed.Channel)
	if len(moves) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(moves, ", "))
	}
	fmt.Fprintf(w, "\n  tone       %d\n  incentive  %d\n  any        %d of %d\n", o.Changed.Tone, o.Changed.Incentive, o.Changed.Any, o.Redecided)
	var arms []string
	for _, k := range slices.Sorted(maps.Keys(o.Changed.Arms)) {
		arms = append(arms, fmt.Sprintf("%s: %d", k, o.Changed.Arms[k]))
	}
	fmt.Fprintf(w, "  holdout arm %d", o.Changed.Arm)
	if len(arms) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(arms, ", "))
	}
	fmt.Fprintln(w, " (the arm the new policy's holdout assigns each invoice)")
	for _, e := range o.Examples {
		fmt.Fprintf(w, "  e.g. %-9s %s step %d: %s → %s\n", e.Change, e.WorkflowID, e.Step, e.Before, e.After)
	}
	fmt.Fprintln(w, "\nincentive cost (discounts off the amount due), per currency:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  currency\tdecisions\tdiscounts before\tafter\tcost before\tcost after")
	for _, c := range o.Cost {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%s\n", c.Currency, c.Decisions, c.Before, c.After, c.BeforeText, c.AfterText)
	}
	tw.Flush()
	fmt.Fprintf(w, "extension days offered: %d → %d\n", o.ExtensionDays[0], o.ExtensionDays[1])
	fmt.Fprintf(w, "incentives withdrawn by a plan's yearly budget: %d → %d\n", o.BudgetWithdraw[0], o.BudgetWithdraw[1])
	fmt.Fprintln(w, "budgets of the new policy (per customer, over any 365 days):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  plan\tmax discount\tdiscount budget\tmax extension\textension budget")
	for _, b := range o.Budgets {
		fmt.Fprintf(tw, "  %s\t%d%%\t%d%%\t%d days\t%d days\n", b.Plan, b.MaxDiscountPercent, b.DiscountBudgetPerYear, b.MaxExtensionDays, b.ExtensionBudgetPerYear)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nguardrail violations with the new prompt set: %d decisions (%d when recorded)\n", o.ViolationTotal, o.RecordedTotal)
	for _, g := range o.Violations {
		fmt.Fprintf(w, "  %d× %s (recorded: %d)\n", g.Count, g.Rule, g.Recorded)
		for _, e := range g.Examples {
			fmt.Fprintf(w, "       %s step %d: %s\n", e.WorkflowID, e.Step, e.After)
		}
	}
}
