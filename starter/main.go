// Command starter is Recoup's event ingress and operator tool: `starter --help` lists its
// commands by group, `starter COMMAND --help` explains one. Configuration comes from the
// environment (README.md). Exit status: 0 on success, 1 on a runtime failure, 2 on bad
// input or usage (nothing was recorded or started).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/recoup-dunning/recoup/internal/config"
	"github.com/recoup-dunning/recoup/internal/events"
	"github.com/recoup-dunning/recoup/internal/postgres"
)

// usageError is bad input: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
	}
	os.Exit(exitCode(err))
}

// exitCode is 0 on success, 2 for bad input (nothing was recorded or started), 1 otherwise.
func exitCode(err error) int {
	var ue usageError
	var ve *events.ValidationError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue) || errors.As(err, &ve) || errors.Is(err, postgres.ErrEventConflict):
		return 2
	}
	return 1
}

// run executes the command line args with the configuration from getenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	return execute(ctx, &app{getenv: getenv, stdin: stdin, stdout: stdout, stderr: os.Stderr}, args)
}

// app is what the commands share: where they read and write, and their dependencies.
type app struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// d is built from getenv before a command runs, unless a test gives its own.
	d   *deps
	ran bool // a command's run function was reached: errors before it are usage errors
}

// execute runs one command line through the command tree.
func execute(ctx context.Context, a *app, args []string) error {
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	if a.stderr == nil {
		a.stderr = io.Discard
	}
	owned := a.d == nil
	root := newRootCommand(a)
	root.SetArgs(singleDashLongFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if owned && a.d != nil {
		a.d.close()
	}
	var ue usageError
	if err != nil && !a.ran && !errors.As(err, &ue) {
		// cobra's own errors, e.g. an unknown command found while walking the tree.
		err = usageError{fmt.Sprintf("%v\nrun '%s --help' for usage", err, cmd.CommandPath())}
	}
	return err
}

// singleDashLongFlags rewrites -name and -name=value to --name… where name is a long flag of
// the command the line runs: starter parsed its flags with Go's flag package before it moved
// to cobra, and scripts written then (`pause INV -by alice`, `status -json INV`) keep working.
// A single dash followed by one letter stays a shorthand; "-" (stdin) and everything after
// "--" are left alone.
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, len(args))
	copy(out, args)
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	valueNext := false // the previous argument is a flag still waiting for its value
	for i, a := range args {
		if a == "--" {
			break
		}
		if valueNext { // "--reason -by": -by is the reason, kept as typed
			valueNext = false
			continue
		}
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := lookup(name)
		if a[1] != '-' && len(name) > 1 && f != nil {
			out[i] = "-" + a
		}
		if f == nil && a[1] != '-' && len(name) == 1 {
			f = cmd.Flags().ShorthandLookup(name)
		}
		valueNext = f != nil && !hasValue && f.NoOptDefVal == ""
	}
	return out
}

// noConfig marks a command that needs no configuration: "self" for that command alone,
// "tree" for its subcommands too.
const noConfig = "recoup/no-config"

// Command groups, in the order `starter --help` lists them.
var groups = []*cobra.Group{
	{ID: "services", Title: "Ingress and services:"},
	{ID: "deploy", Title: "Deployment:"},
	{ID: "support", Title: "Support (runs, incidents, customers):"},
	{ID: "marketing", Title: "Prompts and reports:"},
	{ID: "demo", Title: "Demo:"},
}

// newRootCommand builds the command tree; each cmd_*.go file adds one group.
func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "starter",
		Short: "Recoup's event ingress and operator tool",
		Long: `starter is Recoup's event ingress and operator tool.

Configuration comes from the environment (see README.md). Exit status: 0 on success,
1 on a runtime failure, 2 on bad input or usage (nothing was recorded or started).`,
		Version:               version,
		Args:                  noArgs,
		DisableFlagsInUseLine: true,
		SilenceErrors:         true, // main prints the error once, with the exit status it implies
		SilenceUsage:          true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{"a command is needed\n\n" + cmd.UsageString()}
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.ran = true
			if a.d != nil || !needsConfig(cmd) {
				return nil
			}
			cfg, err := config.FromEnv(a.getenv)
			if err != nil {
				return err
			}
			a.d = &deps{cfg: cfg}
			return nil
		},
	}
	root.Annotations = map[string]string{noConfig: "self"}
	root.SetVersionTemplate("recoup starter {{.Version}}\n")
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return wrongArgs(cmd, err.Error())
	})
	root.SuggestionsMinimumDistance = 2
	root.AddGroup(groups...)
	addServiceCommands(root, a)
	addDeployCommands(root, a)
	addSupportCommands(root, a)
	addMarketingCommands(root, a)
	addDemoCommands(root, a)
	root.AddCommand(&cobra.Command{
		Use:         "version",
		Short:       "Print the version",
		Args:        noArgs,
		Annotations: map[string]string{noConfig: "self"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stdout, "recoup starter", version)
			return nil
		},
	})
	// cobra adds these two on Execute; adding them now puts them in the tree the tests walk.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "completion":
			group(c) // `completion tcsh` is an error, not its help
			fallthrough
		case "help":
			c.Annotations = map[string]string{noConfig: "tree"}
		}
	}
	return root
}

// needsConfig is false for a command marked noConfig or under one marked "tree".
func needsConfig(cmd *cobra.Command) bool {
	if cmd.Annotations[noConfig] != "" {
		return false
	}
	for c := cmd.Parent(); c != nil; c = c.Parent() {
		if c.Annotations[noConfig] == "tree" {
			return false
		}
	}
	return true
}

// Argument checks: each names the command, what is wrong and its usage.

func wrongArgs(cmd *cobra.Command, problem string) error {
	return usageError{fmt.Sprintf("%s%s\nusage: %s\nrun '%s --help' for more", prefix(cmd), problem, cmd.UseLine(), cmd.CommandPath())}
}

// prefix names cmd in an error message: main prints "starter: " before it.
func prefix(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return ""
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ") + ": "
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return wrongArgs(cmd, fmt.Sprintf("unknown command %q%s", args[0], suggest(cmd, args[0])))
		}
		return wrongArgs(cmd, fmt.Sprintf("takes no arguments, got %q", args))
	}
	return nil
}

// exactArgs wants n arguments, named by what (e.g. "INVOICE_ID").
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return wrongArgs(cmd, fmt.Sprintf("wants %s (%d %s), got %d", what, n, plural(n, "argument"), len(args)))
		}
		return nil
	}
}

// maxArgs wants at most n arguments, named by what.
func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return wrongArgs(cmd, fmt.Sprintf("wants at most %s, got %d arguments", what, len(args)))
		}
		return nil
	}
}

// suggest names the subcommands of cmd spelled like typed, if any.
func suggest(cmd *cobra.Command, typed string) string {
	if s := cmd.SuggestionsFor(typed); len(s) > 0 {
		return fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return ""
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// group makes cmd a command that only holds subcommands: run alone or with an unknown
// subcommand, it is a usage error that lists them.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[noConfig] = "self"
	cmd.DisableFlagsInUseLine = true
	cmd.SuggestionsMinimumDistance = 2
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		problem := "a subcommand is needed"
		if len(args) > 0 {
			problem = fmt.Sprintf("unknown subcommand %q%s", args[0], suggest(cmd, args[0]))
		}
		return usageError{fmt.Sprintf("%s%s\n\n%s", prefix(cmd), problem, cmd.UsageString())}
	}
	return cmd
}

// deps are opened lazily: validation errors need neither PostgreSQL nor Temporal.
type deps struct {
	cfg config.Config
	st  *postgres.Store
	tc  client.Client
}

func (d *deps) store(ctx context.Context) (*postgres.Store, error) {
	if d.st != nil {
		return d.st, nil
	}
	st, err := postgres.Open(ctx, d.cfg.DatabaseURL, postgres.Options{MaxClockSkew: d.cfg.MaxClockSkew})
	if err != nil {
		return nil, err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	d.st = st
	return st, nil
}

func (d *deps) temporal() (client.Client, error) {
	if d.tc != nil {
		return d.tc, nil
	}
	tc, err := d.cfg.DialTemporal(d.cfg.Logger())
	if err != nil {
		return nil, err
	}
	d.tc = tc
	return tc, nil
}

func (d *deps) close() {
	if d.tc != nil {
		d.tc.Close()
	}
	if d.st != nil {
		d.st.Close()
	}
}
