package main

import (
	"log/slog"
	"math"
	"runtime/debug"

	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/memlimit"
)

// cgroupRoot is where the process's cgroup shows its memory limit (a container sees its own).
const cgroupRoot = "/sys/fs/cgroup"

// fitMemory sizes the sticky workflow cache from the memory the worker has, unless
// WORKER_STICKY_CACHE_SIZE set it, and sets the Go runtime's soft memory limit to 90% of a
// known limit when GOMEMLIMIT is not set; it logs what it chose and why.
func fitMemory(cfg *config.Config, logger *slog.Logger) {
	goLimit := debug.SetMemoryLimit(-1) // reads it: math.MaxInt64 when GOMEMLIMIT is unset
	cgroup, err := memlimit.ReadCgroup(cgroupRoot)
	if err != nil {
		logger.Warn("cannot read the container's memory limit", "error", err)
	}
	k := memlimit.Known{Setting: cfg.WorkerMemory, Cgroup: cgroup, GoMemLimit: goLimit}
	choice := memlimit.StickyCache(k)
	if goLimit == math.MaxInt64 && (k.Setting > 0 || cgroup > 0) {
		soft := memlimit.SoftLimit(choice.Memory)
		debug.SetMemoryLimit(soft)
		logger.Info("Go memory limit set from the worker's memory (GOMEMLIMIT unset)", "soft_limit", memlimit.Format(soft), "memory", memlimit.Format(choice.Memory), "from", choice.Source)
	}
	if cfg.Tuning.StickyCacheSize > 0 {
		logger.Info("sticky cache sized by WORKER_STICKY_CACHE_SIZE", "runs", cfg.Tuning.StickyCacheSize)
		return
	}
	cfg.Tuning.StickyCacheSize = choice.Size
	logger.Info("sticky cache sized from the worker's memory (WORKER_STICKY_CACHE_SIZE overrides)", "runs", choice.Size,
		"memory", memlimit.Format(choice.Memory), "from", choice.Source,
		"rule", "half of the memory above 96 MiB at 80 KiB a cached run, 100 to 10,000 runs")
}
