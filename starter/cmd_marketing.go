package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/segments"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/internal/report"
)

// Marketing: the prompt set (lint, preview, diff) and the recovery report.
func addMarketingCommands(root *cobra.Command, a *app) {
	prompts := group(&cobra.Command{Use: "prompts", GroupID: "marketing", Short: "The prompt set: lint, preview, diff"})
	var lintDir string
	lint := &cobra.Command{
		Use:   "lint [flags] [DIR]",
		Short: "Check a prompt set (file:line: problem)",
		Long: `Check a prompt set: templates, policy and guardrails, every problem as file:line: message
(exit status 2 when there is one). DIR (or --dir) defaults to PROMPTS_DIR, else the built-in
prompts.`,
		Example: "  starter prompts lint\n  starter prompts lint ./my-prompts",
		Args:    maxArgs(1, "one DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := a.d.cfg.PromptsDir
			if cmd.Flags().Changed("dir") {
				dir = lintDir
			}
			if len(args) == 1 {
				if cmd.Flags().Changed("dir") && args[0] != lintDir {
					return wrongArgs(cmd, "give the directory once: as DIR or as --dir")
				}
				dir = args[0]
			}
			return lintPrompts(dir, a.stdout)
		},
	}
	lint.Flags().StringVar(&lintDir, "dir", "", "prompt directory (default: PROMPTS_DIR or the built-in prompts)")
	_ = lint.MarkFlagDirname("dir")
	preview := previewCommand(a)
	var replyDir, replyLocale, replyZone string
	previewReply := &cobra.Command{
		Use:   "preview-reply [flags] TEXT",
		Short: "Show how a customer's reply is heard: keyword or intent, confidence, who decided, the action",
		Long: `Show what Recoup does with a customer's reply TEXT: a carrier keyword (STOP, START, HELP in
every shipped language) is handled by code; any other reply is masked and classified into one
intent by the model (with OPENAI_API_KEY) and by the rules of replies.yaml, and the rules of
replies.yaml decide the action (for a promise, until when the run pauses).`,
		Example: "  starter prompts preview-reply \"I'll pay on the 15th\"\n  starter prompts preview-reply --locale es-ES --time-zone Europe/Madrid \"Pagaré el viernes\"",
		Args:    exactArgs(1, "the reply TEXT (quote it)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("dir") {
				replyDir = a.d.cfg.PromptsDir
			}
			return previewReply(cmd.Context(), a.d, replyDir, replyLocale, replyZone, args[0], a.stdout)
		},
	}
	previewReply.Flags().StringVar(&replyDir, "dir", "", "prompt directory (default: PROMPTS_DIR or the built-in prompts)")
	previewReply.Flags().StringVar(&replyLocale, "locale", "en-US", "the customer's locale")
	previewReply.Flags().StringVar(&replyZone, "time-zone", "UTC", "the customer's time zone (IANA), for dates")
	_ = previewReply.MarkFlagDirname("dir")
	prompts.AddCommand(lint, preview, previewReply, diffCommand(a))
	root.AddCommand(prompts)

	root.AddCommand(reportCommand(a))
}

// reportCommand is `starter report`.
func reportCommand(a *app) *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:     "report [flags]",
		GroupID: "marketing",
		Short:   "Recovery by prompt variant, channel, tone and incentive; experiments with verdicts; the page",
		Long: `Recovery rate, time to recovery and messages per recovery of the runs started in the last
--days days, by prompt variant, channel, tone and incentive: the runs whose 28-day attribution
window has closed (a run still open then counts as not recovered, one paid later too), the
holdout's control runs left out.

--experiments: the experiments instead (the holdout, prompt variants, model against rules, also
per segment), per arm and currency: recovery rate with its 95% interval, recovered amount and
amount per run, incentive spend, and against the first arm, within weeks of start
(Mantel–Haenszel), an always-valid sequential test (mSPRT, α = 0.05, Bonferroni-corrected:
valid however often the report is looked at), its confidence sequence for the difference, the
minimum sample size for a 5-point difference at 80% power and a verdict. Each experiment is
analysed over all its runs since its first, whatever --days says (the test keeps α only over
one growing sample, not a sliding window). A run counts once its 28-day attribution window
has closed.

--html FILE: both, with charts, as one self-contained HTML page (no network needed to read
it); its numbers are those of --csv and --csv --experiments.`,
		Example: "  starter report --days 30\n  starter report --csv --experiments\n  starter report --html recovery.html",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.days < 1 {
				return wrongArgs(cmd, fmt.Sprintf("--days must be at least 1, got %d", o.days))
			}
			if o.html != "" && (o.csv || o.experiments) {
				return wrongArgs(cmd, "--html writes the whole page; it takes neither --csv nor --experiments")
			}
			return printReport(cmd.Context(), a.d, o, a.stdout)
		},
	}
	cmd.Flags().IntVar(&o.days, "days", 90, "the per-dimension rows: runs started in the last N days (the experiments read all their runs)")
	cmd.Flags().BoolVar(&o.csv, "csv", false, "CSV instead of a table")
	cmd.Flags().BoolVar(&o.experiments, "experiments", false, "the experiments with their verdicts instead of the per-dimension rows")
	cmd.Flags().StringVar(&o.html, "html", "", "write the report page (HTML with charts) to FILE")
	_ = cmd.MarkFlagFilename("html", "html")
	return cmd
}

type reportOptions struct {
	days             int
	csv, experiments bool
	html             string
}

func fixtureNames() []string {
	names := make([]string, len(templates.Fixtures))
	for i, f := range templates.Fixtures {
		names[i] = f.Name
	}
	return names
}

// previewCommand is `starter prompts preview`.
func previewCommand(a *app) *cobra.Command {
	var o previewOptions
	preview := &cobra.Command{
		Use:   "preview --customer ID|FIXTURE [flags]",
		Short: "Show the exact prompt, both decisions and the messages for a customer",
		Long: `Show what a step would send a customer: the exact prompt (system and user messages, answer
schema), the model's decision (with OPENAI_API_KEY) and the rules' decision, which one would be
sent and why, and the email and SMS rendered. --customer is a customer id from PostgreSQL or a
fixture: ` + strings.Join(fixtureNames(), ", ") + `.`,
		Example: "  starter prompts preview --customer lucia-basic-es --step 3 --variant empathetic\n  starter prompts preview --customer ada-pro-en --failure-code iso8583:43",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.customer == "" {
				return wrongArgs(cmd, "--customer is needed (a customer id or a fixture: "+strings.Join(fixtureNames(), ", ")+")")
			}
			if o.step < 1 {
				return wrongArgs(cmd, fmt.Sprintf("--step must be at least 1, got %d", o.step))
			}
			if !cmd.Flags().Changed("dir") {
				o.dir = a.d.cfg.PromptsDir
			}
			return previewPrompt(cmd.Context(), a.d, o, a.stdout)
		},
	}
	preview.Flags().StringVar(&o.customer, "customer", "", "customer id (from PostgreSQL) or fixture name")
	preview.Flags().IntVar(&o.step, "step", 1, "step of the schedule")
	preview.Flags().StringVar(&o.variant, "variant", "", "prompt variant (default: the customer's own)")
	preview.Flags().StringVar(&o.failureCode, "failure-code", "", "the payment's failure code, bare or namespaced like stripe:expired_card (default: the fixture's, or card_declined)")
	preview.Flags().IntVar(&o.failures, "failures", 1, "payment failures the run has seen, the first included (2: a retry failed)")
	preview.Flags().StringVar(&o.dir, "dir", "", "prompt directory (default: PROMPTS_DIR or the built-in prompts)")
	_ = preview.MarkFlagDirname("dir")
	_ = preview.RegisterFlagCompletionFunc("customer", cobra.FixedCompletions(fixtureNames(), cobra.ShellCompDirectiveNoFileComp))
	return preview
}

// lintPrompts prints every problem of the prompt set in dir ("": the built-in one).
func lintPrompts(dir string, stdout io.Writer) error {
	problems := templates.Lint(dir)
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		return usageError{fmt.Sprintf("%d problems in the prompt set", len(problems))}
	}
	set, err := templates.Load(dir)
	if err != nil {
		return err
	}
	where := dir
	if where == "" {
		where = "the built-in prompts"
	}
	fmt.Fprintf(stdout, "%s: no problems (version %s, policy %s, declines %s %s, locales %v, variants %v)\n",
		where, set.Version, set.PolicyVersion, set.Declines.Version, set.Declines.Hash, set.Locales(), set.Variants())
	fmt.Fprintln(stdout, set.Policy.Approval.Summary())
	fmt.Fprintln(stdout, set.Policy.Holdout.Summary())
	return nil
}

type previewOptions struct {
	customer, variant, dir string
	step                   int
	failureCode            string // "": the fixture's, or card_declined
	failures               int
}

// previewPrompt shows what a step would send a customer.
func previewPrompt(ctx context.Context, d *deps, o previewOptions, stdout io.Writer) error {
	set, err := templates.Load(o.dir)
	if err != nil {
		return usageError{err.Error()}
	}
	if o.variant != "" && o.variant != "control" && !slices.Contains(set.Variants(), o.variant) {
		return usageError{fmt.Sprintf("--variant: %q is not one of %v", o.variant, set.Variants())}
	}
	acts := &activities.DunningActivities{Base: activities.Base{Prompts: func() *templates.Set { return set }, Logger: d.cfg.Logger()},
		PaymentURL: d.cfg.PaymentURL, UnsubscribeURL: d.cfg.UnsubscribeURL}
	if d.cfg.LLMEnabled() {
		if acts.LLM, err = openai.New(d.cfg.LLM); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	in := activities.PreviewInput{Variant: o.variant, InvoiceID: "inv_preview", CustomerID: o.customer,
		Decide: activities.DecideInput{WorkflowID: "dunning-inv_preview", InvoiceID: "inv_preview", Step: o.step,
			TotalSteps: len(set.Policy.ScheduleDays), Now: now}}
	if f, ok := templates.FixtureByName(o.customer); ok {
		in.FirstName = f.FirstName
		in.Decide.History = activities.CustomerHistory{CustomerID: f.Name, Plan: f.Plan, Locale: f.Locale, TimeZone: f.TimeZone,
			TenureDays: f.TenureDays, LifetimeValueMinor: f.LifetimeValueMinor, EmailReachable: f.EmailReachable,
			SMSReachable: f.SMSReachable, PaymentsSucceeded: f.PaymentsSucceeded, PaymentsFailed: f.PaymentsFailed}
		in.Decide.AmountMinor, in.Decide.Currency, in.Decide.FailureCode = f.AmountMinor, f.Currency, f.FailureCode
	} else {
		st, err := d.store(ctx)
		if err != nil {
			return err
		}
		acts.Store = st
		if in.Decide.History, err = acts.FetchCustomerHistory(ctx, activities.FetchHistoryInput{CustomerID: o.customer, Now: now}); err != nil {
			return usageError{fmt.Sprintf("--customer %q is neither a fixture nor a known customer: %v", o.customer, err)}
		}
		c, _ := st.GetCustomer(ctx, o.customer)
		if f := strings.Fields(c.Name); len(f) > 0 {
			in.FirstName = f[0]
		}
		in.Decide.AmountMinor, in.Decide.Currency, in.Decide.FailureCode = 4900, "USD", "card_declined"
	}
	in.Decide.FailureCode, in.Decide.Failures = cmp.Or(o.failureCode, in.Decide.FailureCode), o.failures
	p, err := activities.PreviewDecision(ctx, acts, set, in)
	if err != nil {
		return err
	}
	section := func(title string) { fmt.Fprintf(stdout, "\n===== %s =====\n", title) }
	fmt.Fprintf(stdout, "prompt set %s (policy %s), variant %q, step %d, allowed channels %v\n",
		set.Version, set.PolicyVersion, p.Variant, o.step, p.AllowedChannel)
	fmt.Fprintf(stdout, "failure code %q: decline class %s (declines.yaml %s)\n", in.Decide.FailureCode, p.RulesDecision.DeclineClass, set.Declines.Version)
	section("system message")
	fmt.Fprintln(stdout, p.System)
	section("user message")
	fmt.Fprintln(stdout, p.User)
	section("answer schema")
	fmt.Fprintln(stdout, p.Schema)
	section("decisions")
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tchannel\ttone\tincentive\tsubject\tmessage")
	if p.ModelDecision != nil {
		row(tw, "model", *p.ModelDecision)
	} else {
		fmt.Fprintln(tw, "model\t(no model configured: set OPENAI_API_KEY)\t\t\t\t")
	}
	row(tw, "rules", p.RulesDecision)
	tw.Flush()
	if len(p.ModelRejected) > 0 {
		fmt.Fprintf(stdout, "the model's answer would not be used: %s\n", strings.Join(p.ModelRejected, "; "))
	}
	fmt.Fprintf(stdout, "sent: the %s decision\n", p.Final.DecidedBy)
	for _, g := range p.Guardrails {
		fmt.Fprintf(stdout, "guardrail %s: %s\n", g.Step, g.Changed)
	}
	section("email: " + p.EmailSubject)
	fmt.Fprint(stdout, p.EmailText)
	c := segments.Of(p.SMS)
	section(fmt.Sprintf("SMS (%d characters, %d %s segments)", len([]rune(p.SMS)), c.Segments, c.Encoding))
	fmt.Fprintln(stdout, p.SMS)
	return nil
}

func row(w io.Writer, who string, d recoup.Decision) {
	inc := d.Incentive.Kind
	if d.Incentive.Value > 0 {
		inc = fmt.Sprintf("%s %d", inc, d.Incentive.Value)
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", who, d.Channel, d.Tone, inc, d.Subject, truncateText(d.Message, 60))
}

func truncateText(s string, n int) string {
	r := []rune(strings.ReplaceAll(s, "\n", " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n]) + "…"
}

// printReport prints recovery by variant, channel, tone and incentive, or the experiments,
// or writes the page.
func printReport(ctx context.Context, d *deps, o reportOptions, stdout io.Writer) error {
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	since := now.AddDate(0, 0, -o.days)
	if o.html != "" || o.experiments {
		p, err := report.Load(ctx, st.Pool(), now, since, report.DefaultWindow)
		if err != nil {
			return err
		}
		switch {
		case o.html != "":
			return writePage(o.html, p, stdout)
		case o.csv:
			return report.WriteExperimentsCSV(stdout, p.Analysis)
		}
		return report.WriteExperimentsTable(stdout, p.Analysis)
	}
	rows, err := report.BuildWindow(ctx, st.Pool(), now, since, report.DefaultWindow)
	if err != nil {
		return err
	}
	if o.csv {
		return report.WriteCSV(stdout, rows)
	}
	return report.WriteTableSince(stdout, rows, since)
}

// writePage writes the page to path (whole or not at all) and says where.
func writePage(path string, p report.Page, stdout io.Writer) error {
	var b bytes.Buffer
	if err := report.WriteHTML(&b, p); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return usageError{fmt.Sprintf("--html: %v", err)}
	}
	fmt.Fprintf(stdout, "wrote %s (%d experiments, %d runs counted, %d in their window left out)\n",
		path, len(p.Analysis.Experiments), p.Analysis.Counted, p.Analysis.Immature)
	return nil
}
