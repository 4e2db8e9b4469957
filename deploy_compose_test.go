package recoup_test

// docker-compose.yml cannot be run here (no Docker engine), so it is proven without one: the
// Compose specification's own loader (compose-go, the library `docker compose` uses) reads it
// with .env.example plus the secrets `make secrets` generates, and every Recoup service's
// environment, exactly as compose would give it, goes through the binary's own configuration
// validation (config.FromEnv and Require for the service's role).

import (
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/recoup-dunning/recoup/internal/config"
)

// generatedEnv runs `make secrets` (scripts/secrets.sh) into a fresh file and returns what
// compose would read from it.
func generatedEnv(t *testing.T) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	out, err := exec.Command("bash", "scripts/secrets.sh", path).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/secrets.sh: %v\n%s", err, out)
	}
	for _, name := range []string{"POSTGRES_PASSWORD", "WEBHOOK_SECRETS", "RECOUP_CODEC_KEYS", "CODEC_AUTH_TOKEN",
		"RECOUP_DEV_OIDC_PASSWORD", "TEMPORAL_AUTH_CLIENT_SECRET"} {
		if !strings.Contains(string(out), "generated "+name) {
			t.Errorf("scripts/secrets.sh did not generate %s:\n%s", name, out)
		}
		if strings.Contains(string(out), "=") {
			t.Errorf("scripts/secrets.sh printed a value:\n%s", out)
		}
	}
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// loadCompose loads docker-compose.yml as `docker compose` would with env as its .env (and
// nothing from this process's environment).
func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(wd, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("recoup", true)
		o.Profiles = profiles
	})
}

func mustLoad(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, env, profiles...)
	if err != nil {
		t.Fatalf("docker compose would refuse the file: %v", err)
	}
	return p
}

// role is what a Recoup service runs: the image's entrypoint is the worker; the others run a
// starter command.
func role(t *testing.T, s types.ServiceConfig) config.Role {
	t.Helper()
	if len(s.Entrypoint) == 0 {
		return config.RoleWorker
	}
	if len(s.Entrypoint) != 2 || s.Entrypoint[0] != "/usr/local/bin/starter" {
		t.Fatalf("service %s: unexpected entrypoint %q", s.Name, s.Entrypoint)
	}
	return config.Role(s.Entrypoint[1])
}

func recoupServices(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		if s := p.Services[name]; strings.HasPrefix(s.Image, "recoup:") {
			out = append(out, s)
		}
	}
	return out
}

// readBy are the variables other code than config.FromEnv reads in the binaries.
func readElsewhere(name string) bool {
	return name == "PGPASSWORD" || // pgx, for DATABASE_URL without a password
		strings.HasPrefix(name, "OTEL_") || // the OpenTelemetry SDK
		strings.HasPrefix(name, "TEMPORAL_") // the Temporal SDK's environment configuration
}

// validate runs the service's configuration through the binary's own checks, recording
// which variables they read.
func validate(t *testing.T, s types.ServiceConfig) (config.Config, map[string]bool, error) {
	t.Helper()
	read := map[string]bool{}
	cfg, err := config.FromEnv(func(name string) string {
		read[name] = true
		if v := s.Environment[name]; v != nil {
			return *v
		}
		return ""
	})
	if err == nil {
		err = cfg.Require(role(t, s))
	}
	return cfg, read, err
}

// The stack starts: with the generated secrets, every Recoup service (all profiles) passes
// its binary's configuration checks; none gets a variable its binary does not read.
func TestComposeServicesStartWithGeneratedSecrets(t *testing.T) {
	env := generatedEnv(t)
	env["KAFKA_BROKERS"] = "kafka:9092" // the kafka profile needs its brokers
	p := mustLoad(t, env, "kafka")
	services := recoupServices(p)
	roles := map[config.Role]bool{}
	for _, s := range services {
		r := role(t, s)
		roles[r] = true
		cfg, read, err := validate(t, s)
		if err != nil {
			t.Errorf("service %s (%s) would refuse to start with the environment compose gives it:\n%v", s.Name, r, err)
			continue
		}
		for name := range s.Environment {
			if !read[name] && !readElsewhere(name) {
				t.Errorf("service %s gets %s, which its binary never reads", s.Name, name)
			}
		}
		if r == config.RoleWorker && cfg.Delivery != config.DeliveryLog {
			t.Errorf("the worker's delivery is %q by default, want log (sandbox)", cfg.Delivery)
		}
	}
	for _, r := range []config.Role{config.RoleWorker, config.RoleServe, config.RoleConsume, config.RoleCodecServer, config.RoleSetup, config.RoleDevOIDC} {
		if !roles[r] {
			t.Errorf("no service runs %s", r)
		}
	}
}

// .env.example alone (secrets empty) is refused by compose itself, with a message that says
// what to do, instead of starting services that fail later.
func TestComposeRefusesMissingSecretsSayingHow(t *testing.T) {
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{".env.example"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = loadCompose(t, env)
	if err == nil || !strings.Contains(err.Error(), "make secrets") {
		t.Fatalf("compose with .env.example's empty secrets: %v; want a refusal naming `make secrets`", err)
	}
}

// Every setting .env.example documents reaches a service that reads it, and every variable
// a Recoup service gets is documented there.
func TestComposePassesEveryDocumentedVariable(t *testing.T) {
	b, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#? ?([A-Z][A-Z0-9_]+)=`).FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	// Read by compose itself (interpolated into the file), not by a binary.
	composeOnly := map[string]bool{"COMPOSE_PROFILES": true, "RECOUP_VERSION": true, "POSTGRES_PASSWORD": true,
		"RECOUP_BIND_ADDR": true, "RECOUP_INGRESS_BIND_ADDR": true, "TEMPORAL_CODEC_ENDPOINT": true, "TEMPORAL_HISTORY_SHARDS": true,
		// The Web UI's sign-in, also given to dev-oidc and the codec server under their names.
		"TEMPORAL_AUTH_PROVIDER_URL": true, "TEMPORAL_AUTH_ISSUER_URL": true, "TEMPORAL_AUTH_CLIENT_ID": true,
		"TEMPORAL_AUTH_CLIENT_SECRET": true, "TEMPORAL_AUTH_CALLBACK_URL": true}
	// Demo and benchmark knobs: documented, deliberately not passed to a deployment.
	demoOnly := map[string]bool{"RECOUP_SCHEDULE": true, "RECOUP_FINAL_WAIT": true, "RECOUP_IGNORE_QUIET_HOURS": true, "RECOUP_CONTACT_CAP": true}
	raw := string(mustRead(t, "docker-compose.yml"))
	p := mustLoad(t, generatedEnv(t), "kafka")
	passed := map[string]bool{}
	for _, s := range recoupServices(p) {
		for name := range s.Environment {
			passed[name] = true
		}
	}
	for name := range documented {
		switch {
		case composeOnly[name]:
			if name != "COMPOSE_PROFILES" && !strings.Contains(raw, "${"+name) { // COMPOSE_PROFILES: compose's own
				t.Errorf(".env.example documents %s for compose, but docker-compose.yml never uses it", name)
			}
		case demoOnly[name]:
		case !passed[name]:
			t.Errorf(".env.example documents %s, but no Recoup service gets it", name)
		}
	}
	setByCompose := map[string]bool{"DATABASE_URL": true, "PGPASSWORD": true, "TEMPORAL_ADDRESS": true,
		"TEMPORAL_NAMESPACE": true, "METRICS_ADDR": true, "INGRESS_ADDR": true, "CODEC_ADDR": true,
		"CODEC_TLS_SELF_SIGNED": true, "CODEC_TLS_SELF_SIGNED_DIR": true, "CODEC_OIDC_AUDIENCE": true, "RECOUP_DEV_OIDC_ADDR": true,
		"RECOUP_DEV_OIDC_PUBLIC_URL": true, "RECOUP_DEV_OIDC_CLIENT_ID": true, "RECOUP_DEV_OIDC_CLIENT_SECRET": true,
		"RECOUP_DEV_OIDC_REDIRECT_URIS": true}
	for name := range passed {
		if !documented[name] && !(setByCompose[name] && strings.Contains(string(b), name)) {
			t.Errorf("services get %s, which .env.example does not document", name)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Start-up order: every dependency waits on a health check that exists or on a one-shot job;
// the image is built once; only the chosen profile's services run.
func TestComposeStartOrder(t *testing.T) {
	p := mustLoad(t, generatedEnv(t))
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which does not run", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no health check", name, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != "no" {
					t.Errorf("%s waits for %s to complete, but %s restarts (%q): it is not a one-shot job", name, dep, dep, target.Restart)
				}
			default:
				t.Errorf("%s depends on %s with condition %q: want service_healthy or service_completed_successfully", name, dep, d.Condition)
			}
		}
		if s.Restart == "unless-stopped" && (s.HealthCheck == nil || s.HealthCheck.Disable) && name != "temporal-ui" {
			t.Errorf("long-running service %s has no health check", name)
		}
	}
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:[0-9][A-Za-z0-9._-]*$`)
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "recoup:") && !pinned.MatchString(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version tag", name, s.Image)
		}
	}
	var builders []string
	for _, s := range recoupServices(p) {
		if s.Build != nil {
			builders = append(builders, s.Name)
		} else if s.PullPolicy != types.PullPolicyNever {
			t.Errorf("service %s uses the locally built image but may pull it (pull_policy %q, want never)", s.Name, s.PullPolicy)
		}
	}
	if len(builders) != 1 {
		t.Errorf("services that build the image: %v; want exactly one", builders)
	}
	if _, ok := p.Services["consume"]; ok {
		t.Error("the Kafka consumer runs without its profile")
	}
	if w := p.Services["worker"]; w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas != 2 {
		t.Error("the worker does not run 2 replicas")
	}
	for _, probe := range []struct{ service, want string }{
		{"postgres", "127.0.0.1"},            // TCP: not the init phase's socket-only server
		{"temporal", "7233"},                 // the frontend listens (setup waits until it serves)
		{"ingress", "/readyz"},               // ready to record events
		{"codec-server", "/healthz"},         // the codec server answers
		{"dev-oidc", "/healthz"},             // the Web UI's sign-in answers
		{"worker", "http://127.0.0.1:9090/"}, // the worker's metrics endpoint
	} {
		if hc := p.Services[probe.service].HealthCheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), probe.want) {
			t.Errorf("service %s: health check %v does not check %s", probe.service, hc, probe.want)
		}
	}
	if strings.Contains(strings.Join(p.Services["temporal-schema"].Command, " "), "|| true") {
		t.Error("the schema job hides failures behind || true")
	}
}

// Switching RECOUP_DELIVERY switches the one worker service: log never calls a provider, even
// with credentials in .env; live does. It has no default: an .env from before it existed
// (credentials, COMPOSE_PROFILES=live) is refused, not silently turned into a sandbox. An
// ALERT_EMAIL without SendGrid stops neither setup nor a sandbox worker.
func TestComposeDeliveryMode(t *testing.T) {
	old := generatedEnv(t)
	delete(old, "RECOUP_DELIVERY")
	old["COMPOSE_PROFILES"] = "live"
	if _, err := loadCompose(t, old); err == nil || !strings.Contains(err.Error(), "RECOUP_DELIVERY") {
		t.Errorf("an .env without RECOUP_DELIVERY: %v; want compose to refuse it naming RECOUP_DELIVERY", err)
	}
	for _, tc := range []struct {
		delivery  string
		wantEmail bool
	}{{"log", false}, {"live", true}} {
		env := generatedEnv(t)
		env["RECOUP_DELIVERY"] = tc.delivery
		env["SENDGRID_API_KEY"] = "SG.Xk2mP9qR7vT4wY6zA1bC3d.E5fG8hJ0kL2nM4pQ6sU8wX0zB2dF4hK6mN8qS0u"
		p := mustLoad(t, env)
		cfg, _, err := validate(t, p.Services["worker"])
		if err != nil {
			t.Fatalf("RECOUP_DELIVERY=%s: the worker would not start: %v", tc.delivery, err)
		}
		if cfg.EmailEnabled() != tc.wantEmail {
			t.Errorf("RECOUP_DELIVERY=%s: email through SendGrid = %v, want %v", tc.delivery, cfg.EmailEnabled(), tc.wantEmail)
		}
	}
	env := generatedEnv(t)
	env["ALERT_EMAIL"] = "oncall@shop.example"
	p := mustLoad(t, env)
	for _, name := range []string{"setup", "worker"} {
		if _, _, err := validate(t, p.Services[name]); err != nil {
			t.Errorf("ALERT_EMAIL without SENDGRID_API_KEY, sandbox: %s would not start: %v", name, err)
		}
	}
}

// Recoup takes a password with the characters base64 makes (/, +, =) and those a URL
// reserves: it travels as PGPASSWORD, which pgx reads, not inside DATABASE_URL. (Temporal's
// image puts it into a URL and a YAML file unescaped: make secrets generates hex for both.)
func TestComposeRecoupTakesAnyDatabasePassword(t *testing.T) {
	env := generatedEnv(t)
	env["POSTGRES_PASSWORD"] = "q/8+Zr=@:x%2F?#y"
	p := mustLoad(t, env)
	s := p.Services["worker"]
	if _, _, err := validate(t, s); err != nil {
		t.Fatalf("the worker would not start: %v", err)
	}
	t.Setenv("PGPASSWORD", *s.Environment["PGPASSWORD"])
	c, err := pgconn.ParseConfig(*s.Environment["DATABASE_URL"])
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	if c.Password != env["POSTGRES_PASSWORD"] || c.User != "recoup" || c.Host != "postgres" {
		t.Errorf("pgx connects as %s@%s with password %q; want recoup@postgres with POSTGRES_PASSWORD", c.User, c.Host, c.Password)
	}
}

// The server's dynamic configuration sets nothing Temporal documents as a development or
// test aid.
func TestTemporalDynamicConfigHasNoDevelopmentSettings(t *testing.T) {
	b := string(mustRead(t, "deploy/temporal-dynamicconfig.yaml"))
	for _, key := range []string{"system.forceSearchAttributesCacheRefreshOnRead", "history.enableTransitionHistory"} {
		if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:`).MatchString(b) {
			t.Errorf("deploy/temporal-dynamicconfig.yaml sets %s, which Temporal documents as not for production", key)
		}
	}
}

// The image build context leaves out the history, local builds and the operator's .env.
func TestDockerignoreKeepsSecretsAndBuildsOut(t *testing.T) {
	b := string(mustRead(t, ".dockerignore"))
	for _, want := range []string{".git", ".bin", ".env"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(b) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	if !strings.Contains(string(mustRead(t, ".gitignore")), ".env") {
		t.Error(".gitignore does not exclude .env")
	}
}

// The Temporal UI server the demo and the browser test build from source (make ui-server) is
// the version of the temporalio/ui image compose runs, so the test exercises what compose
// deploys.
func TestUIServerBuiltFromSourceIsTheComposeImageVersion(t *testing.T) {
	m := regexp.MustCompile(`(?m)^UI_SERVER_VERSION := v(\S+)$`).FindSubmatch(mustRead(t, "Makefile"))
	if m == nil {
		t.Fatal("Makefile: no UI_SERVER_VERSION := v…")
	}
	p := mustLoad(t, generatedEnv(t))
	if img, want := p.Services["temporal-ui"].Image, "temporalio/ui:"+string(m[1]); img != want {
		t.Errorf("compose runs %s, make ui-server builds ui-server v%s: align them", img, m[1])
	}
}
