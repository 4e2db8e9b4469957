package recoup_test

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Temporal's frontend and Web UI and the codec server are admin surfaces: compose publishes
// them on 127.0.0.1 unless RECOUP_BIND_ADDR says otherwise. Only the ingress, which billing
// and Stripe must reach and which checks signatures, is published on every interface.
func TestAdminPortsBindToLoopbackByDefault(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Ports []string `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	public := map[string]bool{"ingress": true}
	admin := 0
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if public[name] {
				continue
			}
			admin++
			if !strings.HasPrefix(p, "${RECOUP_BIND_ADDR:-127.0.0.1}:") {
				t.Errorf("service %s publishes %q on every interface; want \"${RECOUP_BIND_ADDR:-127.0.0.1}:host:container\"", name, p)
			}
		}
	}
	if admin < 3 {
		t.Errorf("found %d admin ports (Temporal, Web UI, codec server), want at least 3", admin)
	}
	env, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "RECOUP_BIND_ADDR=127.0.0.1") {
		t.Error(".env.example does not document RECOUP_BIND_ADDR")
	}
}
