// Package fakes is the test toolkit: one fake per provider (SendGrid, Twilio, OpenAI), each
// an httptest server that validates every request against the project's own contract
// description (contracts/*.yaml, checked in-process with kin-openapi), records it and answers
// as the test says; the service helpers (a migrated PostgreSQL schema per test, the Temporal
// CLI, the worker binary); RequireServices, which skips service tests under -short; and
// Eventually, for conditions reached asynchronously.
package fakes
