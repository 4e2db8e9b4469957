// Package prompts holds the texts marketing edits: the LLM's system and user prompts, the
// email and SMS message templates and the policy file. They are embedded in the binaries as
// the defaults; setting PROMPTS_DIR to a directory with the same files overrides them.
// See README.md in this directory.
package prompts

import "embed"

// Default is the embedded, shipped prompt set.
//
//go:embed *.tmpl policy.yaml guardrails.yaml replies.yaml retry.yaml declines.yaml messages variants
var Default embed.FS
