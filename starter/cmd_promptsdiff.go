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
show how many would change channel, tone or incentive (with examples), the incentive cost
before and after per currency against the plans' budgets, every guardrail violation the new
prompt set provokes (grouped by rule), and the decisions that cannot be re-decided. DIR is
linted first; a problem stops the diff.

The rules decide again always. With a model configured (OPENAI_API_KEY, or OPENAI_BASE_URL
and OPENAI_MODEL, as for the worker) the model is asked again with the new prompts; without
one, each recorded model answer is checked against the new guardrails and policy instead.
Nothing is sent, no decision is written and billing is not called.`,
		Example: "  starter prompts diff --since 30d ./my-prompts\n  starter prompts diff --since 72h --json ./my-prompts",
		Args:    exactArgs(1, "the prompt set's DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseSince(since)
			if err != nil {
				return wrongArgs(cmd, "--since: "+err.Error())
			}
			if o.limit < 1 {
				return wrongArgs(cmd, fmt.Sprintf("--limit must be at least 1, got %d", o.limit))
			}
			o.dir, o.since = args[0], time.Now().UTC().Add(-d)
			return diffPrompts(cmd.Context(), a.d, o, a.stdout)
		},
	}
	cmd.Flags().StringVar(&since, "since", "30d", "decisions recorded in this last span: a Go duration (72h) or days (30d)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the diff as JSON")
	cmd.Flags().IntVar(&o.limit, "limit", 10000, "at most this many decisions, the newest")
	return cmd
}

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
	dir    string
	since  time.Time
	limit  int
	asJSON bool
}

// The examples shown per kind of change and per violation rule.
const diffExamples = 3

// promptDiff is the outcome of `starter prompts diff` (its --json form).
type promptDiff struct {
	PromptDir      string         `json:"prompt_dir"`
	PromptVersion  string         `json:"prompt_version"`
	PolicyVersion  string         `json:"policy_version"`
	Since          time.Time      `json:"since"`
	Mode           string         `json:"mode"` // "model" or "recorded answers"
	ModeNote       string         `json:"mode_note"`
	Decisions      int            `json:"decisions"`       // read
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
	Any       int            `json:"any"`
	Channels  map[string]int `json:"channel_moves"` // "email → sms" → count
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
func diffPrompts(ctx context.Context, d *deps, o diffOptions, stdout io.Writer) error {
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
	if d.cfg.LLMEnabled() {
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
	out, err := buildDiff(ctx, r, set, rows)
	if err != nil {
		return err
	}
	out.PromptDir, out.Since = o.dir, o.since
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

// buildDiff decides rows again with r and compares.
func buildDiff(ctx context.Context, r activities.Redecider, set *templates.Set, rows []postgres.RecordedDecision) (promptDiff, error) {
	out := promptDiff{PromptVersion: set.Version, PolicyVersion: set.PolicyVersion, Decisions: len(rows),
		RedecidedBy: map[string]int{}, NotRedecidable: map[string]int{}, Changed: diffChanges{Channels: map[string]int{}}}
	out.Mode, out.ModeNote = activities.RedecidedByRecorded, "no model configured: each recorded model answer is checked against the new guardrails and policy (set OPENAI_API_KEY to ask the model again); the rules decide the rest"
	if r.LLM != nil {
		out.Mode, out.ModeNote = activities.RedecidedByModel, fmt.Sprintf("model %s asked again with the new prompts; the rules decide when its answer is refused", r.LLM.Model())
	}
	costs := map[string]*diffCost{}
	rules := map[string]*diffRule{}
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
		re, err := r.Decide(ctx, rec)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return out, err
			}
			out.NotRedecidable["the new prompt set could not decide it: "+err.Error()]++
			continue
		}
		out.Redecided++
		out.RedecidedBy[re.Decider]++
		compare(&out, row, rec, re.Decision)
		addCost(costs, rec, re.Decision)
		for i, inc := range []recoup.Incentive{rec.Decided.Incentive, re.Decision.Incentive} {
			if inc.Kind == recoup.IncentiveExtensionDays {
				out.ExtensionDays[i] += inc.Value
			}
		}
		tallyViolations(&out, rules, row, rec.Decided.Violations, re.Violations)
	}
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
}

func incentiveText(i recoup.Incentive) string {
	if i.Kind == "" || i.Kind == recoup.IncentiveNone {
		return recoup.IncentiveNone
	}
	return fmt.Sprintf("%s %d", i.Kind, i.Value)
}

// addCost adds the decision's discount (a percentage of the amount due) before and after.
func addCost(costs map[string]*diffCost, rec activities.RecordedInputs, d recoup.Decision) {
	cur := strings.ToUpper(rec.Decide.Currency)
	c := costs[cur]
	if c == nil {
		c = &diffCost{Currency: cur}
		costs[cur] = c
	}
	c.Decisions++
	discount := func(i recoup.Incentive) int64 {
		if i.Kind != recoup.IncentiveDiscountPercent {
			return 0
		}
		return (rec.Decide.AmountMinor*int64(i.Value) + 50) / 100
	}
	if rec.Decided.Incentive.Kind == recoup.IncentiveDiscountPercent {
		c.Before++
	}
	if d.Incentive.Kind == recoup.IncentiveDiscountPercent {
		c.After++
	}
	c.BeforeMinor += discount(rec.Decided.Incentive)
	c.AfterMinor += discount(d.Incentive)
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
	fmt.Fprintf(w, "mode: %s\n", o.ModeNote)
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
