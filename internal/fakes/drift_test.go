package fakes_test

// The drift test: the project's contract descriptions (contracts/*.yaml) held against the
// providers' official OpenAPI documents in ../shared/specs (outside the repository; never
// committed). Every path and method, parameter and request-body property a description
// declares must exist in the official document with a compatible type (and enum values it
// allows), every field a description requires must exist there, and every field the official
// document requires must be required by the description too. Without the documents the test
// is skipped — and fails when RECOUP_REQUIRE_SPECS=1, as in CI.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"

	"github.com/recoup-dunning/recoup/internal/fakes"
)

// officialSpecs maps each description to its official document (../shared/specs/README.md).
var officialSpecs = map[string]string{
	fakes.ContractSendGrid: "sendgrid_mail_v3.json",
	fakes.ContractTwilio:   "twilio_api_v2010.json",
	fakes.ContractOpenAI:   "openai.yaml",
}

// specsDir is RECOUP_SPECS_DIR, else $SHARED/specs, else ../shared/specs beside the
// repository.
func specsDir() string {
	if d := os.Getenv("RECOUP_SPECS_DIR"); d != "" {
		return d
	}
	if s := os.Getenv("SHARED"); s != "" {
		return filepath.Join(s, "specs")
	}
	return filepath.Join(fakes.RepoRoot(), "..", "shared", "specs")
}

func TestContractsMatchOfficialSpecs(t *testing.T) {
	dir := specsDir()
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("RECOUP_REQUIRE_SPECS") == "1" {
			t.Fatalf("the providers' official OpenAPI documents are required (RECOUP_REQUIRE_SPECS=1) but %s is missing: %v", dir, err)
		}
		t.Skipf("no official provider documents at %s (set RECOUP_SPECS_DIR): the drift check is skipped", dir)
	}
	for name, file := range officialSpecs {
		t.Run(name, func(t *testing.T) {
			off := loadOfficial(t, filepath.Join(dir, file))
			for _, p := range compare(fakes.MustContract(name).Doc, off) {
				t.Errorf("%s drifts from %s: %s", name, file, p)
			}
		})
	}
}

// TestDriftCheckFindsDrift proves the comparison catches what it is there for, on a small
// official document written here.
func TestDriftCheckFindsDrift(t *testing.T) {
	official := map[string]any{"paths": map[string]any{"/send": map[string]any{"post": map[string]any{
		"parameters": []any{map[string]any{"name": "id", "in": "path", "schema": map[string]any{"type": "string"}}},
		"requestBody": map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
			"type": "object", "required": []any{"to", "from"},
			"properties": map[string]any{
				"to":   map[string]any{"type": "string"},
				"from": map[string]any{"$ref": "#/components/schemas/From"},
				"kind": map[string]any{"type": "string", "enum": []any{"a", "b"}},
			}}}}}}}},
		"components": map[string]any{"schemas": map[string]any{"From": map[string]any{"type": "object",
			"properties": map[string]any{"email": map[string]any{"type": "string"}}}}}}
	ours := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /send/{id}:
    post:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [to, color]
              properties:
                to: {type: integer}
                color: {type: string}
                kind: {type: string, enum: [a, c]}
                from: {type: object, properties: {address: {type: string}}}
      responses: {"200": {description: ok}}
`
	doc, err := openapi3.NewLoader().LoadFromData([]byte(ours))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(compare(doc, official), "\n")
	for _, want := range []string{"POST /send/{id}: not in the official document"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q\nwant one with %q", got, want)
		}
	}
	doc.Paths.Set("/send", doc.Paths.Value("/send/{id}"))
	doc.Paths.Delete("/send/{id}")
	got = strings.Join(compare(doc, official), "\n")
	for _, want := range []string{
		"parameter path id: type integer, official string",
		"body.to: type integer, official string",
		"body.color: not in the official document",
		`body.kind: enum value "c" not allowed`,
		"body.from.address: not in the official document",
		"body: official requires from",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems:\n%s\nwant one with %q", got, want)
		}
	}
}

func loadOfficial(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if strings.HasSuffix(path, ".json") {
		err = json.Unmarshal(b, &doc)
	} else {
		err = yaml.Unmarshal(b, &doc)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// compare lists where ours (a description) is not allowed by off (an official document
// as generic JSON).
func compare(ours *openapi3.T, off map[string]any) []string {
	o := official{root: off}
	var probs []string
	for _, path := range ours.Paths.InMatchingOrder() {
		item := ours.Paths.Value(path)
		for method, op := range item.Operations() {
			where := method + " " + path
			offItem := o.deref(dig(off, "paths", path))
			offOp := o.deref(dig(offItem, strings.ToLower(method)))
			if offOp == nil {
				probs = append(probs, where+": not in the official document")
				continue
			}
			offParams := append(o.list(offItem["parameters"]), o.list(offOp["parameters"])...)
			for _, p := range append(item.Parameters, op.Parameters...) {
				pv := p.Value
				var match map[string]any
				for _, q := range offParams {
					if qm := o.deref(q); qm != nil && qm["name"] == pv.Name && qm["in"] == pv.In {
						match = qm
					}
				}
				pw := fmt.Sprintf("%s: parameter %s %s", where, pv.In, pv.Name)
				if match == nil {
					probs = append(probs, pw+": not in the official document")
					continue
				}
				probs = append(probs, o.check(pv.Schema.Value, match["schema"], pw)...)
			}
			if op.RequestBody == nil {
				continue
			}
			for ct, media := range op.RequestBody.Value.Content {
				offMedia := dig(o.deref(offOp["requestBody"]), "content", ct)
				if offMedia == nil {
					probs = append(probs, fmt.Sprintf("%s: request body %s not in the official document", where, ct))
					continue
				}
				probs = append(probs, o.check(media.Schema.Value, offMedia["schema"], where+": body")...)
			}
		}
	}
	sort.Strings(probs)
	return probs
}

func dig(n any, keys ...string) map[string]any {
	for _, k := range keys {
		m, ok := n.(map[string]any)
		if !ok {
			return nil
		}
		n = m[k]
	}
	m, _ := n.(map[string]any)
	return m
}

type official struct{ root map[string]any }

// deref follows local $refs ("#/a/b").
func (o official) deref(n any) map[string]any {
	m, _ := n.(map[string]any)
	for i := 0; m != nil && i < 32; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		m = dig(o.root, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
	}
	return m
}

func (o official) list(n any) []any { l, _ := n.([]any); return l }

// alt is one shape an official schema allows, after allOf is merged and oneOf/anyOf split.
type alt struct {
	types    map[string]bool // empty: any type
	props    map[string][]any
	required map[string]bool
	enum     []any // nil: any value
	items    []any
	addl     []any // additionalProperties schemas
	pattern  string
	format   string
	limits   map[string]float64 // minLength, maxLength, minItems, maxItems, minimum, maximum
}

var limitKeys = []string{"minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum"}

// ourLimit returns a limit of ours (ok false: none).
func ourLimit(s *openapi3.Schema, key string) (float64, bool) {
	switch key {
	case "minLength":
		return float64(s.MinLength), s.MinLength > 0
	case "maxLength":
		if s.MaxLength != nil {
			return float64(*s.MaxLength), true
		}
	case "minItems":
		return float64(s.MinItems), s.MinItems > 0
	case "maxItems":
		if s.MaxItems != nil {
			return float64(*s.MaxItems), true
		}
	case "minimum":
		if s.Min != nil {
			return *s.Min, true
		}
	case "maximum":
		if s.Max != nil {
			return *s.Max, true
		}
	}
	return 0, false
}

func (o official) alts(n any, depth int) []alt {
	m := o.deref(n)
	if m == nil || depth > 12 {
		return []alt{{}}
	}
	base := alt{types: map[string]bool{}, props: map[string][]any{}, required: map[string]bool{}, limits: map[string]float64{}}
	base.pattern, _ = m["pattern"].(string)
	base.format, _ = m["format"].(string)
	for _, k := range limitKeys {
		if v, ok := m[k].(float64); ok {
			base.limits[k] = v
		} else if v, ok := m[k].(int); ok {
			base.limits[k] = float64(v)
		}
	}
	switch t := m["type"].(type) {
	case string:
		base.types[t] = true
	case []any:
		for _, x := range t {
			base.types[fmt.Sprint(x)] = true
		}
	}
	if len(base.types) > 0 && m["nullable"] == true {
		base.types["null"] = true
	}
	for k, v := range dig(m, "properties") {
		base.props[k] = append(base.props[k], v)
	}
	for _, r := range o.list(m["required"]) {
		base.required[fmt.Sprint(r)] = true
	}
	if e, ok := m["enum"].([]any); ok {
		base.enum = e
	}
	if c, ok := m["const"]; ok {
		base.enum = []any{c}
	}
	if it, ok := m["items"]; ok {
		base.items = []any{it}
	}
	if ap, ok := m["additionalProperties"].(map[string]any); ok {
		base.addl = []any{ap}
	}
	out := []alt{base}
	for _, part := range o.list(m["allOf"]) {
		var next []alt
		for _, a := range out {
			for _, b := range o.alts(part, depth+1) {
				next = append(next, merge(a, b))
			}
		}
		out = next
	}
	for _, key := range []string{"oneOf", "anyOf"} {
		branches := o.list(m[key])
		if len(branches) == 0 {
			continue
		}
		var next []alt
		for _, a := range out {
			for _, br := range branches {
				for _, b := range o.alts(br, depth+1) {
					next = append(next, merge(a, b))
				}
			}
		}
		out = next
	}
	return out
}

func merge(a, b alt) alt {
	out := alt{types: map[string]bool{}, props: map[string][]any{}, required: map[string]bool{}, limits: map[string]float64{},
		pattern: a.pattern, format: a.format}
	if b.pattern != "" {
		out.pattern = b.pattern
	}
	if b.format != "" {
		out.format = b.format
	}
	for _, x := range []alt{a, b} {
		for k, v := range x.limits {
			out.limits[k] = v
		}
	}
	switch {
	case len(a.types) == 0:
		out.types = b.types
	case len(b.types) == 0:
		out.types = a.types
	default: // both constrain: the intersection (integer is a number)
		for t := range a.types {
			if b.types[t] || t == "integer" && b.types["number"] {
				out.types[t] = true
			}
		}
		for t := range b.types {
			if a.types[t] || t == "integer" && a.types["number"] {
				out.types[t] = true
			}
		}
		if len(out.types) == 0 {
			out.types["(none)"] = true
		}
	}
	for _, x := range []alt{a, b} {
		for k, v := range x.props {
			out.props[k] = append(out.props[k], v...)
		}
		for k := range x.required {
			out.required[k] = true
		}
		out.items = append(out.items, x.items...)
		out.addl = append(out.addl, x.addl...)
	}
	out.enum = a.enum
	if b.enum != nil {
		out.enum = b.enum
	}
	return out
}

// check returns the problems of ours against the official schema n (none if any one of the
// shapes n allows admits ours; else those of the closest shape).
func (o official) check(ours *openapi3.Schema, n any, where string) []string {
	if ours == nil {
		return nil
	}
	// Ours offers alternatives: each must be allowed.
	if branches := append(slices.Clone(ours.OneOf), ours.AnyOf...); len(branches) > 0 && len(ours.Properties) == 0 && ours.Type == nil {
		var probs []string
		for _, b := range branches {
			probs = append(probs, o.check(b.Value, n, where)...)
		}
		return probs
	}
	var best []string
	for i, a := range o.alts(n, 0) {
		p := o.checkAlt(ours, a, where)
		if len(p) == 0 {
			return nil
		}
		if i == 0 || len(p) < len(best) {
			best = p
		}
	}
	return best
}

func (o official) checkAlt(ours *openapi3.Schema, a alt, where string) []string {
	var probs []string
	var offTypes []string
	for t := range a.types {
		offTypes = append(offTypes, t)
	}
	sort.Strings(offTypes)
	if ours.Type != nil {
		for _, t := range ours.Type.Slice() {
			if len(a.types) > 0 && !a.types[t] && !(t == "integer" && a.types["number"]) {
				probs = append(probs, fmt.Sprintf("%s: type %s, official %s", where, t, strings.Join(offTypes, "|")))
			}
		}
	}
	if a.pattern != "" && ours.Pattern != a.pattern {
		probs = append(probs, fmt.Sprintf("%s: pattern %q, official %q", where, ours.Pattern, a.pattern))
	}
	if a.format != "" && ours.Format != a.format {
		probs = append(probs, fmt.Sprintf("%s: format %q, official %q", where, ours.Format, a.format))
	}
	for _, k := range limitKeys {
		off, ok := a.limits[k]
		if !ok {
			continue
		}
		v, has := ourLimit(ours, k)
		if !has || strings.HasPrefix(k, "min") && v < off || strings.HasPrefix(k, "max") && v > off {
			probs = append(probs, fmt.Sprintf("%s: %s %v (set: %v) is looser than the official %v", where, k, v, has, off))
		}
	}
	if a.enum != nil {
		if len(ours.Enum) == 0 {
			probs = append(probs, fmt.Sprintf("%s: any value, official only %v", where, a.enum))
		}
		for _, v := range ours.Enum {
			if !slices.ContainsFunc(a.enum, func(x any) bool { return fmt.Sprint(x) == fmt.Sprint(v) }) {
				probs = append(probs, fmt.Sprintf("%s: enum value %q not allowed (official %v)", where, fmt.Sprint(v), a.enum))
			}
		}
	}
	if ours.Items != nil {
		for _, it := range a.items {
			probs = append(probs, o.check(ours.Items.Value, it, where+"[]")...)
		}
	}
	if ap := ours.AdditionalProperties.Schema; ap != nil {
		for _, x := range a.addl {
			probs = append(probs, o.check(ap.Value, x, where+".*")...)
		}
	}
	names := make([]string, 0, len(ours.Properties))
	for k := range ours.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		offs, ok := a.props[k]
		if !ok {
			probs = append(probs, fmt.Sprintf("%s.%s: not in the official document", where, k))
			continue
		}
		for _, off := range offs {
			probs = append(probs, o.check(ours.Properties[k].Value, off, where+"."+k)...)
		}
	}
	required := slices.Clone(ours.Required)
	for _, b := range append(slices.Clone(ours.AnyOf), ours.OneOf...) {
		if b.Value != nil && len(b.Value.Properties) == 0 {
			required = append(required, b.Value.Required...) // "one of these" sender fields
		}
	}
	for _, r := range required {
		if _, ok := a.props[r]; !ok && len(a.props) > 0 {
			probs = append(probs, fmt.Sprintf("%s: requires %s, not in the official document", where, r))
		}
	}
	var offReq []string
	for r := range a.required {
		offReq = append(offReq, r)
	}
	sort.Strings(offReq)
	for _, r := range offReq {
		if !slices.Contains(ours.Required, r) {
			probs = append(probs, fmt.Sprintf("%s: official requires %s; ours does not", where, r))
		}
	}
	return probs
}
