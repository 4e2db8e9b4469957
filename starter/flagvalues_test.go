package main

import (
	"reflect"
	"testing"
)

// Regression (break test): a flag value that looks like an old-style flag ("--reason -by")
// is the value as typed, not rewritten to "--by".
func TestAFlagValueThatLooksLikeAFlagIsKeptAsTyped(t *testing.T) {
	root := newRootCommand(&app{getenv: func(string) string { return "" }})
	cases := [][]string{
		{"pause", "in_1", "--reason", "-by"},
		{"resolve", "in_1", "--note", "-note", "--by", "alice"},
		{"resolve", "in_1", "--by", "-by", "--note", "x"},
	}
	for _, in := range cases {
		out := singleDashLongFlags(root, in)
		if !reflect.DeepEqual(in, out) {
			t.Errorf("value rewritten: %q -> %q", in, out)
		}
	}
}

func TestAReasonTypedAsMinusByIsRecordedAsTyped(t *testing.T) {
	root := newRootCommand(&app{getenv: func(string) string { return "" }})
	args := singleDashLongFlags(root, []string{"pause", "in_1", "--reason", "-by"})
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("parse: %v", err)
	}
	got, _ := cmd.Flags().GetString("reason")
	if got != "-by" {
		t.Errorf("reason recorded as %q, typed %q", got, "-by")
	}
}
