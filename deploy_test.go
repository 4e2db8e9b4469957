package recoup_test

// The deployment files cannot be run here (no Docker engine), so they are checked for what
// can be checked: structure, pinned images, ordering, health checks, and that every setting
// the binaries read is documented in .env.example.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]struct {
		Image       string         `yaml:"image"`
		Build       any            `yaml:"build"`
		DependsOn   map[string]any `yaml:"depends_on"`
		Healthcheck map[string]any `yaml:"healthcheck"`
		Restart     string         `yaml:"restart"`
		Profiles    []string       `yaml:"profiles"`
		Deploy      struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
		Environment map[string]any `yaml:"environment"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	for _, want := range []string{"postgres", "temporal-schema", "temporal", "setup", "temporal-ui", "worker", "worker-sandbox", "ingress", "codec-server"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("service %s is missing", want)
		}
	}
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:[0-9][A-Za-z0-9._-]*$`)
	for name, s := range c.Services {
		switch {
		case strings.HasPrefix(s.Image, "recoup:"):
			// built from this repository
		case !pinned.MatchString(s.Image):
			t.Errorf("service %s: image %q is not pinned to a version tag", name, s.Image)
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
		}
		if s.Restart == "unless-stopped" && s.Healthcheck == nil && name != "temporal-ui" {
			t.Errorf("long-running service %s has no health check", name)
		}
	}
	for _, w := range []string{"worker", "worker-sandbox"} {
		if r := c.Services[w].Deploy.Replicas; r != 2 {
			t.Errorf("%s runs %d replicas, want 2", w, r)
		}
		if _, ok := c.Services[w].DependsOn["setup"]; !ok {
			t.Errorf("%s does not wait for the setup job", w)
		}
	}
	if !slices.Contains(c.Services["worker-sandbox"].Profiles, "sandbox") || !slices.Contains(c.Services["worker"].Profiles, "live") {
		t.Error("the sandbox and live profiles are not set on the workers")
	}
	if c.Services["codec-server"].Profiles != nil {
		t.Error("payload encryption must be on by default: the codec server runs in every profile")
	}
	for _, w := range []string{"worker", "worker-sandbox", "ingress", "setup"} {
		if v, _ := c.Services[w].Environment["RECOUP_CODEC_KEYS"].(string); !strings.Contains(v, ":?") {
			t.Errorf("%s: RECOUP_CODEC_KEYS = %q, want it required", w, v)
		}
	}
	for _, key := range []string{"SENDGRID_API_KEY", "TWILIO_ACCOUNT_SID", "OPENAI_API_KEY"} {
		if _, ok := c.Services["worker-sandbox"].Environment[key]; ok {
			t.Errorf("the sandbox worker gets %s: it must run in log delivery mode", key)
		}
	}
}

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
