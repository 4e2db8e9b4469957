package spike

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stream generates synthetic failure traffic: a steady background with a daily cycle,
// hour-to-hour drift and Poisson noise, spread over gateways, BINs, countries and codes
// with skewed shares, plus optional injected spikes.
type stream struct {
	rng       *rand.Rand
	perMinute float64 // mean background failures per minute
	spikes    []injected
	// burst, when set, multiplies the background (failures and successes) at t: a renewal
	// day, a weekly cycle.
	burst func(t time.Time) float64
	// volume is the successful payments per background failure (0: no volume reported).
	volume float64
	// gen, when set, replaces background (e.g. a single-gateway merchant).
	gen func(r *rand.Rand, at time.Time) Record
}

type injected struct {
	from, to  time.Time
	perMinute float64
	rec       func(r *rand.Rand) Record // what the spike's failures look like
}

var (
	gateways  = []string{"stripe", "adyen", "braintree", "checkout"}
	gwWeights = []float64{0.5, 0.3, 0.15, 0.05}
	countries = []string{"US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "BR", "MX", "JP"}
	codes     = []string{"card_declined", "insufficient_funds", "expired_card", "do_not_honor", "incorrect_cvc", "processing_error", "lost_card", "authentication_required"}
)

// zipf holds cumulative Zipf-like shares: item i has weight 1/(i+1)^skew.
type zipf []float64

func newZipf(n int, skew float64) zipf {
	z, total := make(zipf, n), 0.0
	for i := range n {
		total += 1 / math.Pow(float64(i+1), skew)
		z[i] = total
	}
	for i := range z {
		z[i] /= total
	}
	return z
}

func (z zipf) pick(r *rand.Rand) int {
	i, _ := slices.BinarySearch(z, r.Float64())
	return min(i, len(z)-1)
}

var binShare, countryShare, codeShare = newZipf(200, 1), newZipf(len(countries), 1), newZipf(len(codes), 1.2)

func weighted(r *rand.Rand, w []float64) int {
	x := r.Float64()
	for i, p := range w {
		x -= p
		if x <= 0 {
			return i
		}
	}
	return len(w) - 1
}

func bin(i int) string { return strconv.Itoa(400000 + i*137) }

func background(r *rand.Rand, at time.Time) Record {
	return Record{At: at, Gateway: gateways[weighted(r, gwWeights)], BIN: bin(binShare.pick(r)),
		Country: countries[countryShare.pick(r)], Code: codes[codeShare.pick(r)],
		AmountBucket: AmountBucket(int64(500 + r.IntN(50000)))}
}

func poisson(r *rand.Rand, lambda float64) int {
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// minute returns the records of the minute starting at t, in time order.
func (s *stream) minute(t time.Time, drift float64) []Record {
	day := 2 * math.Pi * float64(t.Hour()*60+t.Minute()) / 1440
	rate := s.perMinute * drift * (1 + 0.5*math.Sin(day))
	if s.burst != nil {
		rate *= s.burst(t)
	}
	var out []Record
	add := func(n int, gen func(*rand.Rand, time.Time) Record) {
		for range n {
			out = append(out, gen(s.rng, t.Add(time.Duration(s.rng.Int64N(int64(time.Minute))))))
		}
	}
	gen := background
	if s.gen != nil {
		gen = s.gen
	}
	add(poisson(s.rng, rate), gen)
	if s.volume > 0 {
		add(poisson(s.rng, rate*s.volume), func(r *rand.Rand, at time.Time) Record {
			rec := gen(r, at)
			rec.Succeeded, rec.Code = true, ""
			return rec
		})
	}
	for _, sp := range s.spikes {
		if !t.Before(sp.from) && t.Before(sp.to) {
			add(poisson(s.rng, sp.perMinute), func(r *rand.Rand, at time.Time) Record { rec := sp.rec(r); rec.At = at; return rec })
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// run feeds the stream from start for d to a fresh detector and returns its events.
func (s *stream) run(t testing.TB, start time.Time, d time.Duration, cfg Config) ([]Event, *Detector) {
	det := New(&State{}, cfg)
	var events []Event
	logDrift := 0.0
	for m := start; m.Before(start.Add(d)); m = m.Add(time.Minute) {
		// Slow drift around the daily cycle: a mean-reverting random walk of the log rate
		// (standard deviation about 15%, so the rate wanders by ±30% within hours).
		logDrift = 0.98*logDrift + 0.03*s.rng.NormFloat64()
		for _, r := range s.minute(m, math.Exp(logDrift)) {
			events = append(events, det.Observe(r)...)
		}
	}
	events = append(events, det.Advance(start.Add(d))...)
	return events, det
}

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func opened(events []Event) []Incident {
	var out []Incident
	for _, e := range events {
		if e.Kind == "opened" {
			out = append(out, e.Incident)
		}
	}
	return out
}

func seeds(def int) int {
	if n, err := strconv.Atoi(os.Getenv("SPIKE_SEEDS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() { // make unit: one seed of each scenario
		return 1
	}
	return def
}

// A BIN range whose issuer goes down: its failures jump from about 0.4 a minute to 15.
// Flagged within 2 minutes of stream time, as the BIN and nothing else; cleared once it
// is over.
func TestBINSpikeIsFlaggedWithinTwoMinutes(t *testing.T) {
	var latencies []time.Duration
	for seed := range seeds(10) {
		spikeAt := t0.Add(6*time.Hour + 17*time.Minute)
		s := &stream{rng: rand.New(rand.NewPCG(uint64(seed), 1)), perMinute: 30, spikes: []injected{{
			from: spikeAt, to: spikeAt.Add(40 * time.Minute), perMinute: 15,
			rec: func(r *rand.Rand) Record {
				rec := background(r, time.Time{})
				rec.BIN, rec.Code = bin(17), "issuer_unavailable"
				return rec
			},
		}}}
		events, det := s.run(t, t0, 8*time.Hour, normalized())
		inc := opened(events)
		if len(inc) != 1 {
			t.Fatalf("seed %d: %d incidents opened, want exactly 1: %+v", seed, len(inc), inc)
		}
		got := inc[0]
		if got.Cohort != Cohort(DimBIN, bin(17)) && got.Cohort != Cohort(DimCode, "issuer_unavailable") {
			t.Fatalf("seed %d: flagged %s, want the BIN %s (or its failure code)", seed, got.Cohort, bin(17))
		}
		lat := got.OpenedAt.Sub(spikeAt)
		if lat < 0 || lat > 2*time.Minute {
			t.Fatalf("seed %d: flagged %s after the spike began, want within 2 minutes", seed, lat)
		}
		if float64(got.Evidence.Observed) < got.Evidence.Expected*DefaultConfig().MinRatio || got.Severity == "" {
			t.Fatalf("seed %d: evidence %+v does not support the flag", seed, got.Evidence)
		}
		latencies = append(latencies, lat)
		final := det.Incident(got.ID)
		if final.Status != Cleared || final.ClearedAt.Before(spikeAt.Add(40*time.Minute)) {
			t.Fatalf("seed %d: incident %s at the end, cleared at %s; want cleared after the spike ended", seed, final.Status, final.ClearedAt)
		}
		if final.Failures < 40*10 {
			t.Fatalf("seed %d: only %d failures attributed to the incident", seed, final.Failures)
		}
	}
	slices.Sort(latencies)
	fmt.Printf("spike-detection: BIN spike 0.4→15/min in 30/min background, %d seeds: flagged after median %s, max %s of stream time\n",
		len(latencies), latencies[len(latencies)/2].Round(time.Second), latencies[len(latencies)-1].Round(time.Second))
}

// A gateway outage: a gateway with 15% of failures goes to 10 times its rate.
func TestGatewayOutageIsOneIncident(t *testing.T) {
	var latencies []time.Duration
	for seed := range seeds(10) {
		spikeAt := t0.Add(3 * time.Hour)
		s := &stream{rng: rand.New(rand.NewPCG(uint64(seed), 2)), perMinute: 30, spikes: []injected{{
			from: spikeAt, to: spikeAt.Add(20 * time.Minute), perMinute: 40,
			rec: func(r *rand.Rand) Record { rec := background(r, time.Time{}); rec.Gateway = "braintree"; return rec },
		}}}
		events, _ := s.run(t, t0, 5*time.Hour, normalized())
		inc := opened(events)
		if len(inc) != 1 || inc[0].Cohort != "gateway=braintree" {
			t.Fatalf("seed %d: incidents %v, want exactly one, gateway=braintree", seed, cohorts(inc))
		}
		lat := inc[0].OpenedAt.Sub(spikeAt)
		if lat > 2*time.Minute {
			t.Fatalf("seed %d: flagged after %s, want within 2 minutes", seed, lat)
		}
		latencies = append(latencies, lat)
	}
	slices.Sort(latencies)
	fmt.Printf("spike-detection: gateway outage 4.5→45/min in 30/min background, %d seeds: one incident each, flagged after median %s, max %s of stream time\n",
		len(latencies), latencies[len(latencies)/2].Round(time.Second), latencies[len(latencies)-1].Round(time.Second))
}

func cohorts(in []Incident) []string {
	var out []string
	for _, i := range in {
		out = append(out, i.Cohort+" ("+i.Evidence.String()+")")
	}
	return out
}

// 24 hours of steady traffic with normal noise (a daily cycle of ±50%, a slow drift of
// about ±15%, Poisson arrivals) must open no incident. SPIKE_SEEDS widens the measurement.
func TestNoIncidentOnSteadyTraffic(t *testing.T) {
	n := seeds(3) // `SPIKE_SEEDS=100 make bench-spike` measures the rate over more
	var flagged []string
	cohortHours := 0
	for seed := range n {
		for _, rate := range []float64{5, 30, 120} {
			s := &stream{rng: rand.New(rand.NewPCG(uint64(seed), uint64(rate))), perMinute: rate}
			events, det := s.run(t, t0, 24*time.Hour, normalized())
			for _, in := range opened(events) {
				flagged = append(flagged, fmt.Sprintf("seed %d rate %g: %s %s", seed, rate, in.Cohort, in.Evidence))
			}
			cohortHours += len(det.S.Cohorts) * 24
		}
	}
	fmt.Printf("spike-false-positives: %d incidents in %d streams of 24 h steady traffic (5, 30 and 120 failures/min; %d cohort-hours watched)\n",
		len(flagged), n*3, cohortHours)
	if len(flagged) > 0 {
		t.Fatalf("incidents on steady traffic:\n%v", flagged)
	}
}

func TestStateSurvivesJSON(t *testing.T) {
	s := &stream{rng: rand.New(rand.NewPCG(7, 7)), perMinute: 30}
	_, det := s.run(t, t0, 2*time.Hour, DefaultConfig())
	raw, err := json.Marshal(det.S)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	if string(again) != string(raw) {
		t.Fatal("state changed through a JSON round trip")
	}
	// Both continue identically.
	a, b := New(det.S, DefaultConfig()), New(&back, DefaultConfig())
	r := Record{At: t0.Add(2*time.Hour + 30*time.Second), BIN: bin(3), Gateway: "stripe"}
	for i := range 50 {
		r.At = r.At.Add(time.Second)
		ea, eb := a.Observe(r), b.Observe(r)
		if len(ea) != len(eb) {
			t.Fatalf("record %d: %d events vs %d after the round trip", i, len(ea), len(eb))
		}
	}
	if len(raw) > 512<<10 {
		t.Fatalf("state of a 2 h stream is %d bytes", len(raw))
	}
}

func TestOperatorActions(t *testing.T) {
	det := New(&State{}, Config{Warmup: time.Minute})
	r := Record{At: t0, BIN: "411111"}
	det.Advance(t0)
	det.Advance(t0.Add(10 * time.Minute))
	var id string
	for i := range 40 {
		r.At = t0.Add(10*time.Minute + time.Duration(i)*time.Second)
		for _, e := range det.Observe(r) {
			if e.Kind == "opened" {
				id = e.Incident.ID
			}
		}
	}
	if id == "" {
		t.Fatal("40 failures of a never-seen BIN in one minute opened no incident")
	}
	if !Holding(det.Incident(id).Status) {
		t.Fatal("the incident is not holding")
	}
	if _, err := det.Act(id, "release", "gateway confirmed up"); err != nil {
		t.Fatal(err)
	}
	if Holding(det.Incident(id).Status) {
		t.Fatal("a released incident still holds runs")
	}
	if _, err := det.Act(id, "acknowledge", ""); err == nil {
		t.Fatal("acknowledging a released incident was accepted")
	}
	if _, err := det.Act("inc-nope", "release", ""); err == nil {
		t.Fatal("an unknown incident was accepted")
	}
	// Released incidents still absorb their cohort's failures: no second incident.
	for i := range 40 {
		r.At = t0.Add(11*time.Minute + time.Duration(i)*time.Second)
		if ev := det.Observe(r); len(opened(ev)) > 0 {
			t.Fatal("a second incident opened for a cohort that has a released one")
		}
	}
}

func TestConfigValidation(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Dimensions = []string{"bin", "planet"}
	c.LongWindow = 90 * time.Second
	c.MinRatio = 1
	c.PValue = 0.7
	err := c.Validate()
	for _, want := range []string{`spike.dimensions: "planet" is not one of`, "spike.long_window: 1m30s must be a multiple", "spike.min_ratio", "spike.p_value"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

func TestPoissonTail(t *testing.T) {
	for _, c := range []struct {
		k      int
		lambda float64
		want   float64
	}{
		{10, 0.2, 2.353e-14}, // P(X≥10; 0.2)
		{3, 0.5, 0.01439},
		{20, 10, 0.003454},
	} {
		got := tail(c.k, c.lambda)
		if math.Abs(got-c.want)/c.want > 0.02 {
			t.Errorf("P(X≥%d; %g) = %g, want %g", c.k, c.lambda, got, c.want)
		}
	}
}
