package fakes

import (
	"testing"
	"time"
)

// EventuallyTimeout bounds Eventually: a bound on a hang, not a speed assertion, generous
// so that a loaded CI machine never fails it.
const EventuallyTimeout = 3 * time.Minute

// Eventually polls cond every 20 ms until it holds, failing the test with msg after
// EventuallyTimeout.
func Eventually(tb testing.TB, cond func() bool, msg string) {
	tb.Helper()
	EventuallyWithin(tb, EventuallyTimeout, cond, msg)
}

// EventuallyWithin is Eventually with a deadline of d.
func EventuallyWithin(tb testing.TB, d time.Duration, cond func() bool, msg string) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
