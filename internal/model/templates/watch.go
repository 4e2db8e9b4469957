package templates

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Watcher keeps the active prompt set of a directory current: a change that passes lint
// becomes the active set without a restart; a change that fails is refused, logged with its
// problems, and the last good set keeps serving. (It polls: that works the same on local
// disks, network mounts and container volumes.) Templates are used only inside activities,
// so a change can never make a running workflow fail or replay differently.
type Watcher struct {
	dir      string
	interval time.Duration
	log      *slog.Logger
	current  atomic.Pointer[Set]
	seen     string // fingerprint of the files last looked at
}

// NewWatcher loads dir (which must be valid now) and returns a watcher for it.
func NewWatcher(dir string, interval time.Duration, logger *slog.Logger) (*Watcher, error) {
	s, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	w := &Watcher{dir: dir, interval: interval, log: logger}
	w.current.Store(s)
	w.seen, _ = fingerprint(dir)
	return w, nil
}

// Current is the active prompt set.
func (w *Watcher) Current() *Set { return w.current.Load() }

// Run polls the directory until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Check looks at the directory once and activates a valid change. It reports whether the
// active set changed.
func (w *Watcher) Check() bool {
	fp, err := fingerprint(w.dir)
	if err != nil || fp == w.seen {
		return false
	}
	w.seen = fp
	s, err := Load(w.dir)
	if err != nil {
		w.log.Error("prompt change refused; the last good prompt set keeps serving",
			"dir", w.dir, "version", w.Current().Version, "problems", err.Error())
		return false
	}
	old := w.Current()
	if s.Version == old.Version {
		return false
	}
	w.current.Store(s)
	w.log.Info("prompt set changed", "dir", w.dir, "from", old.Version, "to", s.Version, "policy_version", s.PolicyVersion)
	return true
}

// fingerprint hashes the names, sizes and modification times of every file under dir.
func fingerprint(dir string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write([]byte(info.ModTime().String()))
		h.Write([]byte{byte(info.Size()), byte(info.Size() >> 8), byte(info.Size() >> 16)})
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}
