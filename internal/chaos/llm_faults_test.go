package chaos_test

// Chaos scenario "LLM faults": an OpenAI-compatible fake answers the 40 runs' decisions with
// a seeded mix of faults — a hang past the client timeout, HTTP 500, a truncated (invalid)
// JSON answer, a JSON answer that does not follow the schema, a refusal (message.refusal), an
// answer that breaks the policy — and good answers. Every run must still send its first
// email exactly once; every faulty answer must have been replaced by the rules policy
// (decisions.decided_by = 'rules') with the reason recorded (decisions.violations), and
// every good answer used (decided_by = 'llm'). CHAOS_SEED replays the same mix.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recoup-dunning/recoup"
	"github.com/recoup-dunning/recoup/activities"
	"github.com/recoup-dunning/recoup/internal/fakes"
	"github.com/recoup-dunning/recoup/internal/openai"
	"github.com/recoup-dunning/recoup/worker/workertest"
)

// llmKind is how the fake answers one run's decision.
type llmKind string

const (
	llmTimeout   llmKind = "timeout"    // hangs past the client timeout
	llmHTTP500   llmKind = "http-500"   // HTTP 500 with OpenAI's error object
	llmBadJSON   llmKind = "bad-json"   // content is truncated JSON
	llmOffSchema llmKind = "off-schema" // content is JSON, but not the schema's shape
	llmRefusal   llmKind = "refusal"    // message.refusal set, content null
	llmViolation llmKind = "violation"  // follows the schema, breaks the policy
	llmGood      llmKind = "good"
)

// What the decision must record (decisions.violations[0]) after each fault.
var llmWantReason = map[llmKind]string{
	llmTimeout:   "model call failed: ",
	llmHTTP500:   "model call failed: openai: HTTP 500",
	llmBadJSON:   "model answer is not valid JSON for the schema: ",
	llmOffSchema: "model answer is not valid JSON for the schema: ",
	llmRefusal:   "model refused: ",
	llmViolation: `tone "threatening" is not one of`,
}

// The user prompt carries the amount due; each run has its own, which names the run.
var amountDueRe = regexp.MustCompile(`amount due: [^0-9\n]*([0-9][0-9,]*)\.`)

// faultyModel (the OpenAI fake's answers) answers each run's decision as plan[run] says and counts requests per run.
type faultyModel struct {
	plan     []llmKind
	mu       sync.Mutex
	requests map[int]int
	unknown  int // requests it could not map to a run
}

func (m *faultyModel) answer(r fakes.Request) fakes.Response {
	run := -1
	if mm := amountDueRe.FindStringSubmatch(r.UserMessage()); mm != nil {
		if n, err := strconv.Atoi(strings.ReplaceAll(mm[1], ",", "")); err == nil && n >= llmAmountBase && n-llmAmountBase < len(m.plan) {
			run = n - llmAmountBase
		}
	}
	m.mu.Lock()
	if run < 0 {
		m.unknown++
	} else {
		m.requests[run]++
	}
	m.mu.Unlock()
	if run < 0 {
		return fakes.Response{Status: http.StatusBadRequest, Body: `{"error":{"message":"unrecognised request","type":"invalid_request_error","param":null,"code":null}}`}
	}
	switch m.plan[run] {
	case llmTimeout:
		return fakes.Response{Hang: true} // the client gives up at its timeout
	case llmHTTP500:
		return fakes.Response{Status: http.StatusInternalServerError,
			Body: `{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}`}
	case llmBadJSON:
		return fakes.Reply(goodEmailAnswer[:len(goodEmailAnswer)/2])
	case llmOffSchema:
		return fakes.Reply(`{"channel":"email","tone":"friendly","incentive":"none","subject":"Payment failed","message":"Please update your card.","rationale":"x","urgency":9}`)
	case llmRefusal:
		return fakes.Refusal("I'm sorry, I can't help with that.")
	case llmViolation:
		return fakes.Reply(mustJSON(map[string]any{"channel": "email", "tone": "threatening",
			"incentive": map[string]any{"kind": "none", "value": 0}, "subject": "Pay now",
			"message": "Pay now or else.", "rationale": "Pressure works."}))
	default:
		return fakes.Reply(goodEmailAnswer)
	}
}

// llmAmountBase: run i owes (llmAmountBase + i) dollars.
const llmAmountBase = 100

func TestLLMFaults(t *testing.T) {
	chaosOnly(t)
	const (
		runs      = 40
		perFault  = 5
		llmBudget = 3 * time.Second // the client timeout: the hanging answers cost this much
	)
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("seed %d (set CHAOS_SEED to replay the same mix)", seed)
	faults := []llmKind{llmTimeout, llmHTTP500, llmBadJSON, llmOffSchema, llmRefusal, llmViolation}
	var plan []llmKind
	for _, k := range faults {
		for range perFault {
			plan = append(plan, k)
		}
	}
	for len(plan) < runs {
		plan = append(plan, llmGood)
	}
	rand.New(rand.NewPCG(seed, 0x6c6c6d)).Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	model := &faultyModel{plan: plan, requests: map[int]int{}}
	oa := fakes.NewOpenAI(t, "")
	oa.Respond(model.answer)
	mc, err := openai.New(openai.Config{APIKey: "sk-chaos", BaseURL: oa.BaseURL(), Model: "chaos-model", Timeout: llmBudget})
	if err != nil {
		t.Fatal(err)
	}
	h := workertest.Start(t, workertest.Options{Schedule: []time.Duration{0, 24 * time.Hour},
		Configure: func(a *activities.Activities) { a.Dunning.LLM = mc }})
	ctx := context.Background()
	inv := func(i int) string { return fmt.Sprintf("inv_llm_%02d", i) }
	for i := range runs {
		ev := workertest.Failed(fmt.Sprintf("evt_llm_%02d", i), inv(i), fmt.Sprintf("cus_llm_%02d", i), time.Now().UTC())
		ev["amount_minor"] = (llmAmountBase + i) * 100
		if res := h.Event(ev); !res.Delivered {
			t.Fatalf("event %d not delivered: %+v", i, res)
		}
	}
	fakes.EventuallyWithin(t, 120*time.Second, func() bool { return sentFirst(t, h.Store) >= runs }, "every run's first email sent")

	type decision struct {
		decidedBy, channel string
		violations         []string
	}
	decisions := map[string]decision{}
	rows, err := h.Store.Pool().Query(ctx, `SELECT workflow_id, decided_by, channel, violations FROM decisions WHERE step = 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var d decision
		if err := rows.Scan(&id, &d.decidedBy, &d.channel, &d.violations); err != nil {
			t.Fatal(err)
		}
		decisions[id] = d
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	count := map[llmKind]int{}
	handled := map[llmKind]int{} // as wanted: rules with the reason for faults, llm for good answers
	dups, lost, asked := 0, 0, 0
	for i := range runs {
		wf := recoup.WorkflowID(inv(i))
		kind := plan[i]
		count[kind]++
		switch n := h.Mail.Accepted(activities.IdempotencyKey(wf, 1, recoup.ChannelEmail)); {
		case n == 0:
			lost++
			t.Errorf("%s (%s): the first email was never accepted", inv(i), kind)
		case n > 1:
			dups++
			t.Errorf("%s (%s): the first email was accepted %d times", inv(i), kind, n)
		}
		model.mu.Lock()
		reqs := model.requests[i]
		model.mu.Unlock()
		asked += reqs
		if reqs != 1 {
			t.Errorf("%s (%s): the model was asked %d times for step 1, want once", inv(i), kind, reqs)
		}
		d, ok := decisions[wf]
		if !ok {
			t.Errorf("%s (%s): no decision recorded for step 1", inv(i), kind)
			continue
		}
		if kind == llmGood {
			if d.decidedBy != recoup.DecidedByLLM || len(d.violations) != 0 {
				t.Errorf("%s: a good answer was decided by %s (violations %q), want llm", inv(i), d.decidedBy, d.violations)
				continue
			}
		} else {
			want := llmWantReason[kind]
			if d.decidedBy != recoup.DecidedByRules || len(d.violations) == 0 || !strings.Contains(d.violations[0], want) ||
				(kind == llmTimeout && strings.Contains(d.violations[0], "HTTP")) {
				t.Errorf("%s: after a %s answer the decision is by %s with reasons %q, want rules with %q", inv(i), kind, d.decidedBy, d.violations, want)
				continue
			}
		}
		if d.channel != string(recoup.ChannelEmail) {
			t.Errorf("%s (%s): step 1 decided channel %q, want email", inv(i), kind, d.channel)
			continue
		}
		handled[kind]++
	}
	if total := h.Mail.AcceptedTotal(); total != runs {
		t.Errorf("the mail fake accepted %d messages in all, want %d", total, runs)
	}
	if model.unknown > 0 {
		t.Errorf("%d model requests could not be matched to a run", model.unknown)
	}
	var rulesRows, llmRows int
	for _, d := range decisions {
		if d.decidedBy == recoup.DecidedByRules {
			rulesRows++
		} else {
			llmRows++
		}
	}
	var parts []string
	for _, k := range append(faults, llmGood) {
		parts = append(parts, fmt.Sprintf("%d %s", count[k], k))
	}
	line := fmt.Sprintf("llm-faults: %d runs (%s), %d model calls; %d decided by rules with the reason recorded, %d by llm; %d first emails sent once, %d duplicates, %d lost",
		runs, strings.Join(parts, ", "), asked, rulesRows, llmRows, runs-dups-lost, dups, lost)
	t.Log(line)
	t.Logf("as expected per kind: %v; total %s", handled, time.Since(began).Round(time.Millisecond))
	fmt.Println(line)
}
