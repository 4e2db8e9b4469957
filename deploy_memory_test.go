package recoup_test

import (
	"testing"

	"github.com/recoup-dunning/recoup/internal/memlimit"
)

// Each worker replica gets a memory limit, and the worker is told the same size: its sticky
// cache is sized for the memory the container really has, by default the measured
// configuration (10,000 parked runs within 256 MB, BENCHMARKS.md "Parked at scale"); an
// operator's RECOUP_WORKER_MEMORY moves both together.
func TestComposeWorkerMemoryMatchesItsLimit(t *testing.T) {
	for _, tc := range []struct {
		setting   string
		limit     int64
		cacheRuns int
	}{{"", 256 << 20, 1024}, {"1G", 1 << 30, 5939}} {
		env := generatedEnv(t)
		if tc.setting != "" {
			env["RECOUP_WORKER_MEMORY"] = tc.setting
		}
		p := mustLoad(t, env)
		s, ok := p.Services["worker"]
		if !ok {
			t.Fatal("docker-compose.yml has no worker service")
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil || int64(s.Deploy.Resources.Limits.MemoryBytes) != tc.limit {
			t.Fatalf("RECOUP_WORKER_MEMORY=%q: the worker's memory limit is %+v, want %d MiB", tc.setting, s.Deploy, tc.limit>>20)
		}
		cfg, _, err := validate(t, s)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.WorkerMemory != tc.limit {
			t.Errorf("RECOUP_WORKER_MEMORY=%q: the worker is told %d bytes, its container is limited to %d", tc.setting, cfg.WorkerMemory, tc.limit)
		}
		c := memlimit.StickyCache(memlimit.Known{Setting: cfg.WorkerMemory, Cgroup: tc.limit})
		if c.Size != tc.cacheRuns {
			t.Errorf("RECOUP_WORKER_MEMORY=%q: sticky cache %d runs, want %d", tc.setting, c.Size, tc.cacheRuns)
		}
	}
}
