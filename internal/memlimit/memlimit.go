// Package memlimit sizes the worker's sticky workflow cache from the memory the process has:
// RECOUP_WORKER_MEMORY when set, else the tightest of the container's memory limit (cgroup v2
// memory.max, cgroup v1 memory.limit_in_bytes) and the Go runtime's soft limit (GOMEMLIMIT).
// StickyCache is pure; ReadCgroup reads the limit files.
package memlimit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The sizing's constants, from BENCHMARKS.md "Parked at scale" (10,000 runs parked, the worker
// binary in its own process): worker RSS 144.3 MB with 1,000 runs cached and 816.8 MB with
// 10,000, so about 75 KB per cached run ((816.8 − 144.3) MB / 9,000), and about 71 MB that
// is not the cache (144.3 MB − 1,000 × 75 KB).
const (
	// PerRun is the memory budgeted for one cached run: the measured 75 KB, rounded up.
	PerRun = 80 << 10
	// Base is the memory kept for the rest of the process (the SDK, gRPC, activities in
	// flight, PostgreSQL pool, Go runtime): the measured 71 MB with headroom.
	Base = 96 << 20
	// Assumed is the memory assumed when none is known: the size compose gives a worker
	// replica (docker-compose.yml), for which 10,000 parked runs measured under 256 MB.
	Assumed = 256 << 20
	// MinSize and MaxSize bound the cache. MaxSize is the SDK's own default: a larger cache
	// only saves replays of runs that are parked anyway.
	MinSize = 100
	MaxSize = 10000
)

// Known is what the process knows of its memory; zero means not known.
type Known struct {
	Setting    int64 // RECOUP_WORKER_MEMORY, bytes
	Cgroup     int64 // the container's limit (ReadCgroup)
	GoMemLimit int64 // the Go runtime's soft limit (GOMEMLIMIT, debug.SetMemoryLimit(-1)); math.MaxInt64 or 0 when unset
}

// Choice is the cache size chosen and why.
type Choice struct {
	Size   int
	Memory int64  // the memory it was sized for, bytes
	Source string // where Memory came from
}

// Budget is the cache's share of memory m: half of what remains after Base.
func Budget(m int64) int64 { return max(0, (m-Base)/2) }

// StickyCache sizes the sticky workflow cache: Budget(memory) / PerRun, clamped to
// [MinSize, MaxSize]. The memory is RECOUP_WORKER_MEMORY when set, else the smaller of the
// cgroup limit and GOMEMLIMIT, else Assumed. With 256 MiB it gives 1,024 runs.
func StickyCache(k Known) Choice {
	c := Choice{Memory: Assumed, Source: "no memory limit known (no RECOUP_WORKER_MEMORY, cgroup limit or GOMEMLIMIT): assumed 256 MiB"}
	switch {
	case k.Setting > 0:
		c.Memory, c.Source = k.Setting, "RECOUP_WORKER_MEMORY"
	case known(k.Cgroup) && (!known(k.GoMemLimit) || k.Cgroup <= k.GoMemLimit):
		c.Memory, c.Source = k.Cgroup, "cgroup memory limit"
	case known(k.GoMemLimit):
		c.Memory, c.Source = k.GoMemLimit, "GOMEMLIMIT"
	}
	n := Budget(c.Memory) / PerRun
	c.Size = int(min(max(n, MinSize), MaxSize))
	return c
}

// SoftLimit is the Go runtime soft limit to set for memory m when GOMEMLIMIT is not set: 90%
// of it, so that the garbage collector works harder before the container is killed.
func SoftLimit(m int64) int64 { return m / 10 * 9 }

// unlimited: cgroup v1 reports "no limit" as a page-rounded MaxInt64; anything past 1 EiB
// is taken as no limit.
const unlimited = int64(1) << 60

func known(v int64) bool { return v > 0 && v < unlimited }

// ReadCgroup reads the memory limit of the cgroup the process runs in, under root (normally
// /sys/fs/cgroup; a container sees its own cgroup there): cgroup v2's memory.max, else cgroup
// v1's memory/memory.limit_in_bytes. It returns 0 when there is no limit or no file.
func ReadCgroup(root string) (int64, error) {
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number of bytes", filepath.Join(root, f), s)
		}
		if !known(v) {
			return 0, nil
		}
		return v, nil
	}
	return 0, nil
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?(?:([kKmMgGtT])[iI]?[bB]?|[bB])?$`)

// ParseSize reads a memory size as docker compose writes one (256M, 512MiB, 1g, 1.5G,
// 268435456): the unit letters are binary multiples (M = MiB), as compose's memory limits.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a memory size (like 256M, 512MiB or 1G)", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a memory size (like 256M, 512MiB or 1G)", s)
	}
	shift := map[string]int{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[strings.ToLower(m[2])]
	b := v * math.Exp2(float64(shift))
	if b < 1 || b >= float64(unlimited) {
		return 0, fmt.Errorf("%q is not a memory size between 1 byte and 1 EiB", s)
	}
	return int64(b), nil
}

// Format writes b in MiB, as the worker's log says it.
func Format(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
