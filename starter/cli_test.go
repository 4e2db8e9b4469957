package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runWithDeps executes a command line with the given dependencies (a test's PostgreSQL and
// Temporal client) and returns what it printed.
func runWithDeps(d *deps, args ...string) (string, error) {
	var out bytes.Buffer
	err := execute(context.Background(), &app{getenv: unreachable, stdout: &out, d: d}, args)
	return out.String(), err
}

// commandLine executes args with the unreachable configuration and returns stdout, stderr.
func commandLine(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := execute(context.Background(), &app{getenv: unreachable, stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}, args)
	return out.String(), errOut.String(), err
}

// walk calls f with every command of the tree, hidden ones (cobra's __complete) excepted.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	if c.Hidden {
		return
	}
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

func tree() *cobra.Command { return newRootCommand(&app{getenv: unreachable}) }

// Every command, a new one included, answers --help with its usage and exit status 0, and
// needs neither PostgreSQL nor Temporal for it.
func TestEveryCommandAnswersHelpWithItsUsage(t *testing.T) {
	n := 0
	walk(tree(), func(c *cobra.Command) {
		n++
		path := strings.Fields(c.CommandPath())[1:]
		t.Run(c.CommandPath(), func(t *testing.T) {
			if c.Short == "" {
				t.Errorf("%s has no one-line description for the command list", c.CommandPath())
			}
			for _, args := range [][]string{append(path, "--help"), append(path, "-h"), append([]string{"help"}, path...)} {
				out, _, err := commandLine(args...)
				if err != nil || exitCode(err) != 0 {
					t.Fatalf("%q: error %v (exit %d)", args, err, exitCode(err))
				}
				if !strings.Contains(out, "Usage:") || !strings.Contains(out, c.CommandPath()) {
					t.Fatalf("%q printed no usage of %s:\n%s", args, c.CommandPath(), out)
				}
			}
		})
	})
	if n < 25 {
		t.Fatalf("walked %d commands; the tree is missing some", n)
	}
}

func TestRootHelpListsEveryCommandByGroup(t *testing.T) {
	out, _, err := commandLine("--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if !strings.Contains(out, g.Title) {
			t.Errorf("help lacks the group %q", g.Title)
		}
	}
	for _, c := range tree().Commands() {
		if !c.Hidden && !strings.Contains(out, "  "+c.Name()+" ") {
			t.Errorf("help does not list %s", c.Name())
		}
		if !c.Hidden && c.GroupID == "" && c.Name() != "help" && c.Name() != "completion" && c.Name() != "version" {
			t.Errorf("%s belongs to no group", c.Name())
		}
	}
}

// A wrong command line names what is wrong, prints nothing on stdout and exits with 2.
func TestWrongCommandLinesAreUsageErrorsNamingTheProblem(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "a command is needed"},
		{[]string{"launch"}, `unknown command "launch"`},
		{[]string{"stauts", "in_1"}, "did you mean status?"},
		{[]string{"status"}, "status: wants INVOICE_ID (1 argument), got 0"},
		{[]string{"status", "in_1", "in_2"}, "got 2"},
		{[]string{"set-channel", "in_1"}, "set-channel: wants INVOICE_ID and a channel"},
		{[]string{"serve", "now"}, `serve: takes no arguments, got ["now"]`},
		{[]string{"probe"}, "probe: wants URL"},
		{[]string{"event", "a.json", "b.json"}, "event: wants at most one FILE"},
		{[]string{"status", "--bogus", "in_1"}, "unknown flag: --bogus"},
		{[]string{"report", "--days", "0"}, "--days must be at least 1"},
		{[]string{"report", "--days", "many"}, `invalid argument "many" for "--days"`},
		{[]string{"report", "--html", "r.html", "--csv"}, "--html writes the whole page"},
		{[]string{"customers"}, "customers: a subcommand is needed"},
		{[]string{"customers", "export"}, `customers: unknown subcommand "export"`},
		{[]string{"customers", "import"}, "customers import: wants FILE"},
		{[]string{"incidents", "shout", "inc-1"}, `incidents: unknown action "shout"`},
		{[]string{"incidents", "ack"}, "incidents ack: wants INCIDENT_ID"},
		{[]string{"prompts", "lint", "a", "b"}, "prompts lint: wants at most one DIR"},
		{[]string{"prompts", "preview"}, "--customer is needed"},
		{[]string{"completion", "tcsh"}, `completion: unknown subcommand "tcsh"`},
	}
	for _, tc := range cases {
		out, _, err := commandLine(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.args, err, tc.want)
			continue
		}
		if exitCode(err) != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, exitCode(err))
		}
		if !strings.Contains(strings.ToLower(err.Error()), "usage") {
			t.Errorf("%q: error %q does not show the usage", tc.args, err)
		}
		if out != "" {
			t.Errorf("%q printed %q on stdout", tc.args, out)
		}
	}
}

func TestVersionNeedsNoConfiguration(t *testing.T) {
	badSchedule := func(name string) string {
		if name == "RECOUP_SCHEDULE" {
			return "3d,1h" // refused by the commands that need the configuration
		}
		return unreachable(name)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		err := execute(context.Background(), &app{getenv: badSchedule, stdout: &out}, args)
		if err != nil || out.String() != "recoup starter dev\n" {
			t.Fatalf("%q: %q, %v", args, out.String(), err)
		}
	}
}

func TestCompletionScriptsForEachShell(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, err := commandLine("completion", shell)
		if err != nil || !strings.Contains(out, "starter") {
			t.Fatalf("completion %s: %v, %d bytes", shell, err, len(out))
		}
	}
	// Completion knows the commands and the values of set-channel's channel.
	out, _, err := commandLine("__complete", "set-channel", "in_1", "")
	if err != nil || !strings.Contains(out, "email") || !strings.Contains(out, "sms") {
		t.Fatalf("set-channel completion: %q, %v", out, err)
	}
	out, _, _ = commandLine("__complete", "inc")
	if !strings.Contains(out, "incidents") {
		t.Fatalf("command completion: %q", out)
	}
}

// A flag name means one thing: wherever it appears it takes the same kind of value.
func TestAFlagNameHasOneTypeAcrossCommands(t *testing.T) {
	seen := map[string]string{}
	where := map[string]string{}
	walk(tree(), func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if t0, ok := seen[f.Name]; ok && t0 != f.Value.Type() {
				t.Errorf("--%s is a %s in %s but a %s in %s", f.Name, t0, where[f.Name], f.Value.Type(), c.CommandPath())
			}
			seen[f.Name], where[f.Name] = f.Value.Type(), c.CommandPath()
		})
	})
}

// The scripts, the compose file, the image and the docs call starter commands: each must
// name a command of the tree (a renamed command is renamed in every caller).
func TestCallersNameExistingCommands(t *testing.T) {
	files := []string{"../Makefile", "../Dockerfile", "../docker-compose.yml", "../README.md", "../BENCHMARKS.md", "../.env.example"}
	for _, pattern := range []string{"../scripts/*.sh", "../docs/*.md", "../docs/*/*.md", "../prompts/*.md", "../prompts/*.yaml"} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	callers := []*regexp.Regexp{
		regexp.MustCompile("`starter ([^`]*)`"),                   // Markdown and comments
		regexp.MustCompile(`bin/starter"? ([^;|&)>\n]*)`),         // scripts: "$bin/starter" X
		regexp.MustCompile(`go run \./starter ([^;|&)>\n]*)`),     // Makefile, scripts
		regexp.MustCompile(`/usr/local/bin/starter", ([^\]\n]*)`), // compose, Dockerfile: ["…/starter", "X", …]
	}
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	root := tree()
	calls := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range callers {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				var words []string // the command words: up to the first argument, flag or placeholder
				for _, w := range strings.Fields(strings.NewReplacer(`"`, " ", ",", " ").Replace(m[1])) {
					if !word.MatchString(w) {
						break
					}
					words = append(words, w)
				}
				if len(words) == 0 {
					continue
				}
				calls++
				cmd, rest, err := root.Find(words)
				if err != nil || cmd == root || (len(rest) > 0 && cmd.HasSubCommands()) {
					t.Errorf("%s: %q calls no starter command (%v)", f, m[0], err)
				}
			}
		}
	}
	if calls < 40 {
		t.Fatalf("found %d calls of starter; the patterns miss the callers", calls)
	}
}
