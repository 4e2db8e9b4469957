package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/llm"
	"github.com/recoup-dunning/recoup/internal/report"
	"github.com/recoup-dunning/recoup/internal/segments"
	"github.com/recoup-dunning/recoup/internal/templates"
)

const promptsUsage = `usage: starter prompts lint [DIR]
       starter prompts preview --customer ID|FIXTURE [--step N] [--variant V] [--dir DIR]
fixtures: ` // completed in cmdPrompts

func cmdPrompts(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	names := make([]string, len(templates.Fixtures))
	for i, f := range templates.Fixtures {
		names[i] = f.Name
	}
	usage := promptsUsage + strings.Join(names, ", ")
	if len(args) == 0 {
		return usageError{usage}
	}
	switch args[0] {
	case "lint":
		dir := d.cfg.PromptsDir
		if len(args) > 2 {
			return usageError{usage}
		}
		if len(args) == 2 {
			dir = args[1]
		}
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
		fmt.Fprintf(stdout, "%s: no problems (version %s, policy %s, locales %v, variants %v)\n",
			where, set.Version, set.PolicyVersion, set.Locales(), set.Variants())
		return nil
	case "preview":
		return cmdPreview(ctx, d, args[1:], stdout, usage)
	}
	return usageError{usage}
}

func cmdPreview(ctx context.Context, d *deps, args []string, stdout io.Writer, usage string) error {
	fs := flag.NewFlagSet("preview", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	customer := fs.String("customer", "", "customer id (from PostgreSQL) or fixture name")
	step := fs.Int("step", 1, "step of the schedule")
	variant := fs.String("variant", "", "prompt variant (default: the customer's own)")
	dir := fs.String("dir", d.cfg.PromptsDir, "prompt directory (default: PROMPTS_DIR or the built-in prompts)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *customer == "" || *step < 1 {
		return usageError{usage}
	}
	set, err := templates.Load(*dir)
	if err != nil {
		return usageError{err.Error()}
	}
	if *variant != "" && *variant != "control" && !contains(set.Variants(), *variant) {
		return usageError{fmt.Sprintf("--variant: %q is not one of %v", *variant, set.Variants())}
	}
	acts := &activities.Activities{Prompts: func() *templates.Set { return set }, PaymentURL: d.cfg.PaymentURL,
		UnsubscribeURL: d.cfg.UnsubscribeURL, Logger: d.cfg.Logger()}
	if d.cfg.LLMEnabled() {
		if acts.LLM, err = llm.New(d.cfg.LLM); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	in := activities.PreviewInput{Variant: *variant, InvoiceID: "inv_preview", CustomerID: *customer,
		Decide: activities.DecideInput{WorkflowID: "dunning-inv_preview", InvoiceID: "inv_preview", Step: *step,
			TotalSteps: len(set.Policy.ScheduleDays), Now: now}}
	if f, ok := templates.FixtureByName(*customer); ok {
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
		if in.Decide.History, err = acts.FetchCustomerHistory(ctx, activities.FetchHistoryInput{CustomerID: *customer, Now: now}); err != nil {
			return usageError{fmt.Sprintf("--customer %q is neither a fixture nor a known customer: %v", *customer, err)}
		}
		c, _ := st.GetCustomer(ctx, *customer)
		if f := strings.Fields(c.Name); len(f) > 0 {
			in.FirstName = f[0]
		}
		in.Decide.AmountMinor, in.Decide.Currency, in.Decide.FailureCode = 4900, "USD", "card_declined"
	}
	p, err := acts.PreviewDecision(ctx, set, in)
	if err != nil {
		return err
	}
	section := func(title string) { fmt.Fprintf(stdout, "\n===== %s =====\n", title) }
	fmt.Fprintf(stdout, "prompt set %s (policy %s), variant %q, step %d, allowed channels %v\n",
		set.Version, set.PolicyVersion, p.Variant, *step, p.AllowedChannel)
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cmdReport prints recovery by variant, channel, tone and incentive.
func cmdReport(ctx context.Context, d *deps, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	days := fs.Int("days", 90, "runs started in the last N days")
	csv := fs.Bool("csv", false, "CSV instead of a table")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *days < 1 {
		return usageError{"usage: starter report [--days N] [--csv]"}
	}
	st, err := d.store(ctx)
	if err != nil {
		return err
	}
	since := time.Now().UTC().AddDate(0, 0, -*days)
	rows, err := report.Build(ctx, st.Pool(), since)
	if err != nil {
		return err
	}
	if *csv {
		return report.WriteCSV(stdout, rows)
	}
	return report.WriteTableSince(stdout, rows, since)
}
