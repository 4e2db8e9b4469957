package recoup_test

import (
	"go/build"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The package layout rules of docs/CONTRIBUTING.md, checked on the source (non-test files)
// so that a change breaking them fails `make unit`:
//   - workflows and the pure models under internal/model reach no adapter: nothing that does
//     I/O (PostgreSQL, providers, HTTP, Kafka) is linked into deterministic code, not even
//     through another package;
//   - the ingest path (events, eventlog, ingress) imports neither workflows nor activities
//     nor a provider SDK: it speaks the root package's vocabulary.

const module = "github.com/recoup-dunning/recoup"

// adapters are the packages that do I/O, named after what they wrap.
var adapters = []string{
	"internal/postgres", "internal/sendgrid", "internal/twilio", "internal/openai",
	"internal/stripe", "internal/kafka", "internal/webhook", "internal/eventlog",
	"internal/ingress", "internal/codec", "internal/config", "internal/customers", "internal/inbound",
}

// providerSDKs are the provider client libraries; only their adapters import them.
var providerSDKs = []string{
	"github.com/sendgrid/", "github.com/twilio/", "github.com/sashabaranov/go-openai",
	"github.com/stripe/", "github.com/jackc/pgx", "github.com/twmb/franz-go",
}

// imports returns the package at dir's non-test imports, and recursively those of the
// module's packages it imports: module-relative paths for the module's own packages, full
// import paths for the rest.
func imports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	seen := map[string][]string{} // import -> chain from dir
	var walk func(rel string, chain []string)
	walk = func(rel string, chain []string) {
		pkg, err := build.ImportDir(filepath.FromSlash(rel), 0)
		if err != nil {
			t.Fatalf("reading package %s: %v", rel, err)
		}
		for _, imp := range pkg.Imports {
			if _, ok := seen[imp]; ok {
				continue
			}
			next := append(append([]string(nil), chain...), imp)
			seen[imp] = next
			if imp == module {
				continue // the root package (this directory)
			}
			if r, ok := strings.CutPrefix(imp, module+"/"); ok {
				walk(r, next)
			}
		}
	}
	walk(dir, []string{dir})
	return seen
}

func modelDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("internal/model/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no packages under internal/model (%v)", err)
	}
	return dirs
}

func forbidden(imp string, prefixes []string) bool {
	for _, p := range prefixes {
		if imp == module+"/"+p || strings.HasPrefix(imp, p) {
			return true
		}
	}
	return false
}

func TestWorkflowsAndModelsImportNoAdapter(t *testing.T) {
	dirs := append([]string{"workflows"}, modelDirs(t)...)
	for _, dir := range dirs {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("reading package %s: %v", dir, err)
		}
		var bad []string
		for _, direct := range pkg.Imports {
			if dir != "workflows" && (direct == module+"/activities" || direct == module+"/workflows") {
				bad = append(bad, dir+" -> "+direct)
				continue
			}
			if forbidden(direct, adapters) || forbidden(direct, providerSDKs) {
				bad = append(bad, dir+" -> "+direct)
				continue
			}
			// Workflows name activities (which call adapters): only that edge is allowed.
			// Every other import is followed to the end.
			if direct == module+"/activities" {
				continue
			}
			rel, ours := strings.CutPrefix(direct, module+"/")
			if !ours {
				continue
			}
			for imp, chain := range imports(t, rel) {
				if imp == module+"/activities" || imp == module+"/workflows" ||
					forbidden(imp, adapters) || forbidden(imp, providerSDKs) {
					bad = append(bad, dir+" -> "+strings.Join(chain, " -> "))
				}
			}
		}
		sort.Strings(bad)
		for _, b := range bad {
			t.Errorf("%s must not import an adapter: %s", dir, b)
		}
	}
}

func TestIngestPathImportsNoWorkflowsActivitiesOrProviderSDK(t *testing.T) {
	for _, dir := range []string{"internal/events", "internal/eventlog", "internal/ingress"} {
		var bad []string
		for imp, chain := range imports(t, dir) {
			if imp == module+"/workflows" || imp == module+"/activities" ||
				forbidden(imp, []string{"github.com/sendgrid/", "github.com/twilio/", "github.com/sashabaranov/go-openai"}) {
				bad = append(bad, strings.Join(chain, " -> "))
			}
		}
		sort.Strings(bad)
		for _, b := range bad {
			t.Errorf("%s must not import workflows, activities or a message provider's SDK: %s", dir, b)
		}
	}
}
