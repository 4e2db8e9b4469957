package memlimit_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recoup-dunning/recoup/internal/memlimit"
)

const mib = 1 << 20

// The cache is sized from the memory the worker has, the tightest source first; without
// any, it fits 10,000 parked runs in 256 MiB (the measured 1,000-run cache).
func TestStickyCache(t *testing.T) {
	for _, tc := range []struct {
		name   string
		k      memlimit.Known
		size   int
		memory int64
		source string
	}{
		{"nothing known", memlimit.Known{GoMemLimit: math.MaxInt64}, 1024, 256 * mib, "assumed 256 MiB"},
		{"compose's replica limit", memlimit.Known{Cgroup: 256 * mib, GoMemLimit: math.MaxInt64}, 1024, 256 * mib, "cgroup"},
		{"a larger container", memlimit.Known{Cgroup: 1024 * mib}, 5939, 1024 * mib, "cgroup"},
		{"GOMEMLIMIT tighter than the container", memlimit.Known{Cgroup: 1024 * mib, GoMemLimit: 512 * mib}, 2662, 512 * mib, "GOMEMLIMIT"},
		{"the container tighter than GOMEMLIMIT", memlimit.Known{Cgroup: 512 * mib, GoMemLimit: 1024 * mib}, 2662, 512 * mib, "cgroup"},
		{"GOMEMLIMIT alone", memlimit.Known{GoMemLimit: 384 * mib}, 1843, 384 * mib, "GOMEMLIMIT"},
		{"the setting wins over the container", memlimit.Known{Setting: 512 * mib, Cgroup: 256 * mib}, 2662, 512 * mib, "RECOUP_WORKER_MEMORY"},
		{"plenty: the SDK's default at most", memlimit.Known{Cgroup: 8192 * mib}, 10000, 8192 * mib, "cgroup"},
		{"less than the base: the minimum", memlimit.Known{Cgroup: 64 * mib}, 100, 64 * mib, "cgroup"},
		{"an unlimited cgroup v1 value is no limit", memlimit.Known{Cgroup: 9223372036854771712}, 1024, 256 * mib, "assumed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := memlimit.StickyCache(tc.k)
			if c.Size != tc.size || c.Memory != tc.memory || !strings.Contains(c.Source, tc.source) {
				t.Errorf("StickyCache(%+v) = %+v, want size %d for %d MiB from %q", tc.k, c, tc.size, tc.memory/mib, tc.source)
			}
		})
	}
}

// The budget keeps 10,000 parked runs of the shipped configuration (256 MiB) under 256 MB at
// the measured cost: 71 MB besides the cache and 75 KB per cached run.
func TestAssumedMemoryParksTenThousandRunsUnder256MB(t *testing.T) {
	c := memlimit.StickyCache(memlimit.Known{})
	predicted := 71e6 + float64(c.Size)*75e3
	if predicted > 256e6 {
		t.Errorf("a %d-run cache predicts %.0f MB of worker RSS with 10,000 runs parked, over 256 MB", c.Size, predicted/1e6)
	}
	if soft := memlimit.SoftLimit(256 * mib); soft <= int64(predicted) || soft >= 256*mib {
		t.Errorf("SoftLimit(256 MiB) = %d MiB, want between the predicted RSS and the limit", soft/mib)
	}
}

func TestReadCgroup(t *testing.T) {
	write := func(t *testing.T, root, rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		err   bool
	}{
		{"cgroup v2 limit", map[string]string{"memory.max": "268435456\n"}, 256 * mib, false},
		{"cgroup v2 no limit", map[string]string{"memory.max": "max\n"}, 0, false},
		{"cgroup v1 limit", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, 512 * mib, false},
		{"cgroup v1 no limit", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"v2 before v1", map[string]string{"memory.max": "268435456", "memory/memory.limit_in_bytes": "536870912"}, 256 * mib, false},
		{"neither", map[string]string{}, 0, false},
		{"garbage", map[string]string{"memory.max": "lots"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for rel, content := range tc.files {
				write(t, root, rel, content)
			}
			got, err := memlimit.ReadCgroup(root)
			if got != tc.want || (err != nil) != tc.err {
				t.Errorf("ReadCgroup = %d, %v; want %d, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"256M": 256 * mib, "256m": 256 * mib, "256MiB": 256 * mib, "256MB": 256 * mib, "1G": 1024 * mib,
		"1.5g": 1536 * mib, "268435456": 256 * mib, "512k": 512 << 10, " 2Gi ": 2048 * mib, "4096b": 4096,
	} {
		got, err := memlimit.ParseSize(in)
		if want == 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1M", "256X", "0", "1.5.5G", "M"} {
		if _, err := memlimit.ParseSize(bad); err == nil || !strings.Contains(err.Error(), "memory size") {
			t.Errorf("ParseSize(%q) = %v, want an error naming a memory size", bad, err)
		}
	}
}
