package benchmarks

// The model's accuracy on the labelled replies, through the same OpenAI-compatible path the
// worker uses (activities.PreviewReply: the prompt of reply.tmpl, the strict schema, the
// fallback to the rules when the answer is unusable). It calls the model configured by
// OPENAI_API_KEY, OPENAI_BASE_URL and OPENAI_MODEL once per reply (284 calls), so it runs
// only with RECOUP_BENCH_MODEL=1: `RECOUP_BENCH_MODEL=1 make bench-replies`.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/model/replies"
	"github.com/recoup-dunning/recoup/internal/model/templates"
	"github.com/recoup-dunning/recoup/internal/openai"
)

func TestModelAccuracyOnLabelledReplies(t *testing.T) {
	if os.Getenv("RECOUP_BENCH_MODEL") != "1" {
		t.Skip("set RECOUP_BENCH_MODEL=1 and OPENAI_API_KEY to measure the model on the labelled replies")
	}
	llm, err := openai.New(openai.Config{APIKey: os.Getenv("OPENAI_API_KEY"), BaseURL: os.Getenv("OPENAI_BASE_URL"), Model: os.Getenv("OPENAI_MODEL")})
	if err != nil {
		t.Fatal(err)
	}
	set, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	acts := &activities.DunningActivities{Base: activities.Base{Prompts: func() *templates.Set { return set }}, LLM: llm}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, file := range []string{"replies.tsv", "replies_holdout.tsv"} {
		total, right := map[recoup.Intent]int{}, map[recoup.Intent]int{}
		fallbacks := 0
		for _, l := range labelled(t, filepath.Join("..", "model", "replies", "testdata", file)) {
			r := recoup.Reply{EventID: "reply:bench", Channel: recoup.ChannelSMS, Text: replies.Mask(replies.StripQuoted(l.text), recoup.MaxReplyText), ReceivedAt: now}
			res, err := activities.PreviewReply(context.Background(), acts, r, l.lang, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if res.DecidedBy != recoup.DecidedByLLM {
				fallbacks++
			}
			total[l.want]++
			if res.Intent == l.want {
				right[l.want]++
			}
		}
		all, allRight := 0, 0
		for _, in := range recoup.Intents {
			all += total[in]
			allRight += right[in]
			fmt.Printf("replies-model %s %-17s %3d/%-3d %5.1f%%\n", file, in, right[in], total[in], 100*float64(right[in])/float64(max(total[in], 1)))
		}
		fmt.Printf("replies-model %s %-17s %3d/%-3d %5.1f%% (model %s, %d answers unusable: rules decided)\n", file, "all", allRight, all,
			100*float64(allRight)/float64(all), llm.Model(), fallbacks)
	}
}

type labelledReply struct {
	lang, text string
	want       recoup.Intent
}

// labelled reads a labelled-replies file (see internal/model/replies/replies_test.go).
func labelled(t *testing.T, path string) []labelledReply {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []labelledReply
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.SplitN(line, "\t", 3)
		if len(p) != 3 {
			t.Fatalf("%s: bad line %q", path, line)
		}
		text, err := strconv.Unquote(`"` + strings.ReplaceAll(p[2], `"`, `\"`) + `"`)
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(text, "{{LONG:"); i >= 0 {
			j := strings.Index(text, "}}")
			unit := text[i+7 : j]
			text = text[:i] + strings.Repeat(unit, 10000/len(unit)) + text[j+2:]
		}
		out = append(out, labelledReply{p[0], text, recoup.Intent(p[1])})
	}
	return out
}
