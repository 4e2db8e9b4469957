package events

// Contract tests: the published schemas (read from disk and compiled independently of
// Decode, as a producer would), the fixtures of every event type, and what Decode makes of
// them. See docs/events/README.md.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const (
	fixtureDir = "testdata/" + schemaVersion
	// semanticMarker in a .want file says that the event passes the schema and only Decode's
	// semantic checks (ISO 4217, IANA, BCP 47, libphonenumber, net/mail, integer notation)
	// refuse it.
	semanticMarker = "# passes the schema"
)

// publishedSchemas compiles schemas/v1/*.json from disk with a fresh compiler, the way a
// producer would, and returns them by event type with their parsed documents.
func publishedSchemas(t *testing.T) (map[string]*jsonschema.Schema, map[string]map[string]any) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("schemas", schemaVersion, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	docs := map[string]map[string]any{}
	for _, f := range files {
		typ := strings.TrimSuffix(filepath.Base(f), ".json")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("%s is not a JSON object", f)
		}
		docs[typ] = m
		id, _ := m["$id"].(string)
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for typ, m := range docs {
		s, err := c.Compile(m["$id"].(string))
		if err != nil {
			t.Fatalf("schema of %s: %v", typ, err)
		}
		out[typ] = s
	}
	return out, docs
}

func TestSchemasAreTheContract(t *testing.T) {
	compiled, docs := publishedSchemas(t)
	var got []string
	for typ := range compiled {
		got = append(got, typ)
	}
	if want := slices.Sorted(slices.Values(Types)); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("schemas/%s holds %v, want exactly one schema per type %v", schemaVersion, got, want)
	}
	for typ, doc := range docs {
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v, want draft 2020-12", typ, doc["$schema"])
		}
		if want := "https://recoup.dev/schemas/events/v1/" + typ + ".json"; doc["$id"] != want {
			t.Errorf("%s: $id = %v, want %s", typ, doc["$id"], want)
		}
		if doc["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties must be false", typ)
		}
		props, _ := doc["properties"].(map[string]any)
		if tp, _ := props["type"].(map[string]any); tp["const"] != typ {
			t.Errorf("%s: properties.type must be {\"const\": %q}", typ, typ)
		}
		var required []string
		for _, r := range doc["required"].([]any) {
			required = append(required, r.(string))
		}
		for _, f := range []string{"type", "event_id", "invoice_id", "occurred_at"} {
			if !slices.Contains(required, f) {
				t.Errorf("%s: %s is not required", typ, f)
			}
		}
		for name := range props {
			if !slices.Contains(envelopeFields, name) {
				t.Errorf("%s: property %s is not in envelopeFields, so normalize ignores it", typ, name)
			}
		}
		if c, ok := props["customer"].(map[string]any); ok {
			if c["additionalProperties"] != false {
				t.Errorf("%s: customer.additionalProperties must be false", typ)
			}
			for name := range c["properties"].(map[string]any) {
				if !slices.Contains(snapshotFields, name) {
					t.Errorf("%s: customer property %s is not in snapshotFields", typ, name)
				}
			}
		} else if typ == "payment.failed" {
			t.Errorf("payment.failed has no customer snapshot")
		}
		// The embedded copy is the file on disk (go:embed), and Decode uses it.
		b, err := schemaFS.ReadFile(schemaPath(typ))
		if err != nil || schemas[typ] == nil {
			t.Errorf("%s: not embedded or not compiled: %v", typ, err)
		}
		if disk, _ := os.ReadFile(filepath.Join("schemas", schemaVersion, typ+".json")); !bytes.Equal(b, disk) {
			t.Errorf("%s: embedded schema differs from the file", typ)
		}
	}
}

// TestEverySchemaPatternHasAMessage keeps the human messages complete: every pattern and
// format a schema uses has a message that says what is wanted.
func TestEverySchemaPatternHasAMessage(t *testing.T) {
	_, docs := publishedSchemas(t)
	var walk func(typ, at string, v any)
	walk = func(typ, at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "pattern" && patternMessages[s] == nil {
					t.Errorf("%s %s: pattern %s has no entry in patternMessages", typ, at, s)
				}
				if s, ok := x.(string); ok && k == "format" && s != "date-time" && s != "email" {
					t.Errorf("%s %s: format %s has no message in formatMessage", typ, at, s)
				}
				walk(typ, at+"/"+k, x)
			}
		case []any:
			for _, x := range v {
				walk(typ, at, x)
			}
		}
	}
	for typ, doc := range docs {
		walk(typ, "", doc)
	}
}

type fixture struct {
	name string // e.g. payment.failed/minimal.json
	data []byte
}

func fixtures(t *testing.T, dir string) []fixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []fixture
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fixture{name: dir + "/" + filepath.Base(f), data: b})
	}
	return out
}

// schemaAccepts validates data against the published schema of typ, as a producer would.
func schemaAccepts(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

func TestValidFixtures(t *testing.T) {
	compiled, _ := publishedSchemas(t)
	for _, typ := range Types {
		fs := fixtures(t, typ)
		if len(fs) < 2 {
			t.Errorf("%s: %d fixtures in %s/%s, want at least a minimal and a full one", typ, len(fs), fixtureDir, typ)
		}
		for _, f := range fs {
			t.Run(f.name, func(t *testing.T) {
				if err := schemaAccepts(t, compiled[typ], f.data); err != nil {
					t.Errorf("the schema refuses it: %v", err)
				}
				ev, err := Decode(f.data)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				var doc map[string]any
				if err := json.Unmarshal(f.data, &doc); err != nil {
					t.Fatal(err)
				}
				at, _ := time.Parse(time.RFC3339Nano, doc["occurred_at"].(string))
				if ev.Type != typ || ev.EventID != doc["event_id"] || ev.InvoiceID != doc["invoice_id"] || !ev.OccurredAt.Equal(at) {
					t.Errorf("Decode = %+v, does not match the fixture", ev)
				}
				if typ == "payment.failed" && (ev.AmountMinor != int64(doc["amount_minor"].(float64)) ||
					ev.Currency != strings.ToUpper(doc["currency"].(string))) {
					t.Errorf("Decode = %+v, amount or currency does not match the fixture", ev)
				}
				var compact bytes.Buffer
				_ = json.Compact(&compact, f.data)
				if !bytes.Equal(ev.Raw, compact.Bytes()) {
					t.Errorf("Raw = %s, want the compacted fixture", ev.Raw)
				}
			})
		}
	}
	dirs, _ := os.ReadDir(fixtureDir)
	for _, d := range dirs {
		if name := d.Name(); d.IsDir() && name != "invalid" && name != "lenient" && !slices.Contains(Types, name) {
			t.Errorf("%s/%s is not an event type", fixtureDir, name)
		}
	}
}

// TestLenientFixtures pins the v1 leniencies: Decode accepts these events although the
// schema does not, because normalize turns them into events the schema accepts.
func TestLenientFixtures(t *testing.T) {
	compiled, _ := publishedSchemas(t)
	fs := fixtures(t, "lenient")
	if len(fs) == 0 {
		t.Fatal("no lenient fixtures")
	}
	for _, f := range fs {
		t.Run(f.name, func(t *testing.T) {
			ev, err := Decode(f.data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if schemaAccepts(t, compiled[ev.Type], f.data) == nil {
				t.Errorf("the schema accepts it as it is; move it to %s/%s", fixtureDir, ev.Type)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.data))
			if err != nil {
				t.Fatal(err)
			}
			// Normalized, it passes the schema as Decode compiles it (with the lenient
			// email format).
			normalize(doc.(map[string]any))
			if err := schemas[ev.Type].Validate(doc); err != nil {
				t.Errorf("the schema refuses it even normalized: %v", err)
			}
		})
	}
}

func TestInvalidFixtures(t *testing.T) {
	compiled, _ := publishedSchemas(t)
	fs := fixtures(t, "invalid")
	if len(fs) == 0 {
		t.Fatal("no invalid fixtures")
	}
	for _, f := range fs {
		t.Run(f.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(fixtureDir, strings.TrimSuffix(f.name, ".json")+".want"))
			if err != nil {
				t.Fatalf("every invalid fixture needs a .want file listing the expected problems: %v", err)
			}
			var wants []string
			semantic := false
			for _, line := range strings.Split(string(b), "\n") {
				switch {
				case strings.HasPrefix(line, semanticMarker):
					semantic = true
				case line != "" && !strings.HasPrefix(line, "#"):
					wants = append(wants, line)
				}
			}
			if len(wants) == 0 {
				t.Fatal(".want lists no problem")
			}
			_, err = Decode(f.data)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Decode error = %v, want a *ValidationError", err)
			}
			for _, w := range wants {
				found := false
				for _, p := range ve.Problems {
					found = found || strings.Contains(p, w)
				}
				if !found {
					t.Errorf("problems %q lack %q", ve.Problems, w)
				}
			}
			// Where the schema stands: it refuses the event, unless .want says only the
			// semantic checks do.
			var doc map[string]any
			if json.Unmarshal(f.data, &doc) != nil {
				return // not a JSON object at all
			}
			typ, _ := doc["type"].(string)
			s := compiled[typ]
			if s == nil {
				return // no schema to ask
			}
			err = schemaAccepts(t, s, f.data)
			if semantic && err != nil {
				t.Errorf(".want says it passes the schema, but the schema refuses it: %v", err)
			}
			if !semantic && err == nil {
				t.Errorf("the schema accepts it; add %q to the .want file if that is intended", semanticMarker)
			}
		})
	}
}

func TestProblemsAreOrderedAndCapped(t *testing.T) {
	m := map[string]any{"type": "payment.failed", "invoice_id": "in 1", "occurred_at": "2026-11-29T10:00:00Z",
		"customer_id": "c1", "amount_minor": 1, "currency": "EUR"}
	for i := range 40 {
		m["extra_"+string(rune('a'+i%26))+string(rune('a'+i/26))] = i
	}
	b, _ := json.Marshal(m)
	_, err := Decode(b)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Decode error = %v", err)
	}
	ps := ve.Problems
	if len(ps) != maxProblems+1 || ps[len(ps)-1] != "event: 17 more problems not listed" {
		t.Fatalf("got %d problems, last %q; want %d and a count of the rest", len(ps), ps[len(ps)-1], maxProblems+1)
	}
	if !strings.HasPrefix(ps[0], "event_id: required") || !strings.HasPrefix(ps[1], "invoice_id: ") ||
		!strings.HasPrefix(ps[2], "extra_aa: unknown field") {
		t.Errorf("problems not in field order: %q", ps[:3])
	}
	for range 5 {
		if _, again := Decode(b); again.Error() != err.Error() {
			t.Fatalf("problems are not deterministic:\n%v\n%v", err, again)
		}
	}
}

func TestHostileFieldNamesAreQuoted(t *testing.T) {
	_, err := Decode([]byte(`{"type":"payment.recovered","event_id":"e1","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00Z","x\ninvoice_id: required":1}`))
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `"x\ninvoice_id: required": unknown field`) {
		t.Errorf("error = %q, want the field name quoted on one line", err)
	}
}

func TestDecodeIsSafeForConcurrentUse(t *testing.T) {
	var all []fixture
	for _, typ := range Types {
		all = append(all, fixtures(t, typ)...)
	}
	all = append(all, fixtures(t, "invalid")...)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, f := range all {
				_, _ = Decode(f.data)
			}
		})
	}
	wg.Wait()
}

func TestEscapesPostgreSQLRefuses(t *testing.T) {
	tests := []struct {
		reason string
		ok     bool
	}{
		{`plain`, true},
		{`\u00e9 \ud83d\ude00`, true}, // é and a surrogate pair
		{`\\u0000`, true},             // an escaped backslash, then text
		{`\"\u0041`, true},
		{`a\u0000b`, false},
		{`\ud800`, false},
		{`\ud800x`, false},
		{`\ud800\u0041`, false},
		{`\ude00`, false},
	}
	for _, tt := range tests {
		data := []byte(`{"type":"dunning.cancel","event_id":"e1","invoice_id":"i1","occurred_at":"2026-11-29T10:00:00Z","reason":"` + tt.reason + `"}`)
		_, err := Decode(data)
		if tt.ok && err != nil {
			t.Errorf("reason %s: %v", tt.reason, err)
		}
		if !tt.ok && (err == nil || !strings.Contains(err.Error(), `event: strings must not contain \u0000`)) {
			t.Errorf("reason %s: error %v, want the escape refused", tt.reason, err)
		}
	}
}
