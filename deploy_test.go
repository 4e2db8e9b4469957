package recoup_test

// The deployment files cannot be run here (no Docker engine), so they are checked for what
// can be checked: structure, pinned images, ordering, health checks, and that every setting
// the binaries read is documented in .env.example.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryVariableDocumented finds every environment variable the binaries read and
// checks that .env.example names it.
func TestEveryVariableDocumented(t *testing.T) {
	env, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`(?:get|dur|boolean|urlVar|list|intVar|rateVar|Getenv)\("([A-Z][A-Z0-9_]+)"`)
	files, _ := filepath.Glob("internal/config/*.go")
	more, _ := filepath.Glob("worker/*.go")
	files = append(files, more...)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range read.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]] = true
		}
	}
	if len(seen) < 30 {
		t.Fatalf("found only %d variables; the pattern no longer matches how config reads them", len(seen))
	}
	for name := range seen {
		if !regexp.MustCompile(`\b` + name + `\b`).Match(env) {
			t.Errorf(".env.example does not mention %s", name)
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(d, -1)
	if len(froms) < 2 {
		t.Fatal("Dockerfile is not multi-stage")
	}
	for _, f := range froms {
		if !strings.Contains(f[1], ":") || strings.HasSuffix(f[1], ":latest") {
			t.Errorf("base image %s is not pinned", f[1])
		}
	}
	for _, want := range []string{"USER nonroot", "HEALTHCHECK", "-X main.version=", "VOLUME [\"/prompts\"]"} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
}
