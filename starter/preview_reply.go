package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/replies"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
)

// previewReply prints how a reply is heard: the keyword, or the masked text, intent,
// confidence, who decided and the action.
func previewReply(ctx context.Context, d *deps, dir, locale, zone, text string, stdout io.Writer) error {
	set, err := templates.Load(dir)
	if err != nil {
		return usageError{err.Error()}
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return usageError{fmt.Sprintf("--time-zone: %q is not an IANA time zone", zone)}
	}
	fmt.Fprintf(stdout, "prompt version  %s\n", set.Version)
	if k := replies.DetectKeyword(text); k != replies.KeywordNone {
		what := map[replies.Keyword]string{
			replies.KeywordStop:  "opt out of the channel (consent ledger, source reply): this run and every later one",
			replies.KeywordStart: "opt back in to the channel (consent ledger, source reply)",
			replies.KeywordHelp:  "no change (the carrier answers HELP itself)",
		}[k]
		fmt.Fprintf(stdout, "keyword         %s (handled by code; no model sees it)\naction          %s\n", k, what)
		return nil
	}
	acts := &activities.DunningActivities{Base: activities.Base{Prompts: func() *templates.Set { return set }, Logger: d.cfg.Logger()}}
	if d.cfg.LLMEnabled() {
		if acts.LLM, err = openai.New(d.cfg.LLM); err != nil {
			return err
		}
	}
	r := recoup.Reply{EventID: "reply:preview", Channel: recoup.ChannelSMS, Text: replies.Mask(text, recoup.MaxReplyText),
		ReceivedAt: time.Now().In(loc), Locale: locale}
	res, err := activities.PreviewReply(ctx, acts, r, locale, loc)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "masked          %s\nintent          %s\nconfidence      %.2f\ndecided by      %s\n", r.Text, res.Intent, res.Confidence, res.DecidedBy)
	if res.PromisedOn != "" {
		fmt.Fprintf(stdout, "promised on     %s\n", res.PromisedOn)
	}
	fmt.Fprintf(stdout, "action          %s\n", res.Action)
	if !res.PauseUntil.IsZero() {
		fmt.Fprintf(stdout, "paused until    %s\n", res.PauseUntil.In(loc).Format(time.RFC3339))
	}
	if res.Note != "" {
		fmt.Fprintf(stdout, "note            %s\n", res.Note)
	}
	for _, v := range res.Violations {
		fmt.Fprintf(stdout, "model not used  %s\n", v)
	}
	return nil
}
