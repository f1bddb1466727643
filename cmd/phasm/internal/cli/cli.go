// Package cli is the phasm command line: cobra commands bound to config
// structs (no package globals), values from flags, PHASM_* environment
// variables and an optional JSON config file (in that order of
// precedence), validation that lists every problem at once, and exit
// codes that tell usage errors from failures and failed checks.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/phasm-go/phasm/cmd/phasm/internal/load"
)

// Exit codes.
const (
	// ExitOK: the command did what was asked.
	ExitOK = 0
	// ExitFailure: the command failed at run time (a store that cannot be
	// opened, a node that cannot be reached, a cluster not available yet).
	ExitFailure = 1
	// ExitUsage: the command line, the environment or the config file is
	// wrong (every problem is listed).
	ExitUsage = 2
	// ExitCheckFailed: a correctness check failed: `phasm load`'s check
	// found violations, or `phasm replay` found nondeterminism or
	// corruption in a journal.
	ExitCheckFailed = 3
)

// ErrCheckFailed marks a failed correctness check (exit 3).
var ErrCheckFailed = errors.New("correctness check failed")

// UsageError lists every problem found with a command's flags,
// environment and config file (exit 2).
type UsageError struct {
	Problems []error // every problem, in the order found
}

// Error lists the problems, one a line.
func (e *UsageError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the problems.
func (e *UsageError) Unwrap() []error { return e.Problems }

func usage(problems ...error) *UsageError {
	var flat []error
	for _, p := range problems {
		if p == nil {
			continue
		}
		if j, ok := p.(interface{ Unwrap() []error }); ok {
			flat = append(flat, j.Unwrap()...)
		} else {
			flat = append(flat, p)
		}
	}
	return &UsageError{Problems: flat}
}

// runError marks an error returned by a command's run (as opposed to
// cobra's own parsing errors, which are usage errors).
type runError struct{ err error }

// Error and Unwrap expose the wrapped error.
func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// IO is where a command reads and writes.
type IO struct {
	In  io.Reader // standard input (send -)
	Out io.Writer // standard output
	Err io.Writer // standard error: problems and logs
	// OutIsTerminal: Out is a terminal (live progress redraws one line).
	OutIsTerminal bool
}

// App is one invocation of the binary.
type App struct {
	io     IO
	getenv func(string) string

	configPath string
	logFormat  string
	logLevel   string
	// problems found applying the environment and the config file; the
	// command's run reports them with its own validation.
	problems []error

	// NodeReady, when set, is called with the admin listener's address
	// once `phasm node` serves (tests use it with --admin 127.0.0.1:0).
	NodeReady func(addr string)
}

// New returns an App writing to io and reading the environment through
// getenv (os.Getenv when nil).
func New(io IO, getenv func(string) string) *App {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &App{io: io, getenv: getenv}
}

// Main runs the binary with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, io IO, getenv func(string) string) int {
	return New(io, getenv).Run(ctx, args)
}

// Run runs the command line and returns the exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	root := a.root()
	root.SetArgs(args)
	root.SetIn(a.io.In)
	root.SetOut(a.io.Out)
	root.SetErr(a.io.Err)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var re *runError
	var ue *UsageError
	switch {
	case errors.As(err, &ue):
		for _, p := range ue.Problems {
			fmt.Fprintf(a.io.Err, "phasm: %v\n", p)
		}
		fmt.Fprintf(a.io.Err, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return ExitUsage
	case !errors.As(err, &re):
		fmt.Fprintf(a.io.Err, "phasm: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return ExitUsage
	case errors.Is(err, ErrCheckFailed), errors.Is(err, load.ErrCheckFailed):
		fmt.Fprintf(a.io.Err, "phasm: %v\n", err)
		return ExitCheckFailed
	default:
		fmt.Fprintf(a.io.Err, "phasm: %v\n", err)
		return ExitFailure
	}
}

// run adapts a command's function: usage errors pass as they are, others
// are marked as run-time failures.
func (a *App) run(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		var ue *UsageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return &runError{err: err}
	}
}

// validate joins the problems found applying the environment and config
// file with a command's own, into one UsageError (nil when none).
func (a *App) validate(errs ...error) error {
	all := append([]error{}, a.problems...)
	for _, e := range errs {
		if e != nil {
			all = append(all, e)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return usage(all...)
}

func (a *App) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "phasm",
		Short: "Deterministic, crash-recoverable state machines: node, load driver and tools",
		Long: `phasm runs and exercises the phasm runtime.

  phasm load                    the bundled load driver (embedded node, bank workload, 10 s)
  phasm node --data DIR         a node hosting the bank, dentist and counter kinds
  phasm status                  a node's status (admin API)
  phasm send KIND ID JSON       send an input to an entity (admin API)
  phasm replay KIND ID --data DIR   replay an entity's journal through its machine
  phasm certs --dir DIR --node ID   a development CA and node certificates for mutual TLS

Every flag can also be given as an environment variable PHASM_<FLAG> (upper
case, dashes as underscores: --admin-token is PHASM_ADMIN_TOKEN) or in a JSON
config file (--config FILE or PHASM_CONFIG); flags win over the environment,
which wins over the file. The file holds flag names as keys, at the top level
or in a section named after the command:

  {"log-format": "json", "node": {"data": "/data", "admin": "0.0.0.0:7480"}}

Exit codes: 0 ok, 1 failure, 2 usage error (bad flags, environment or config
file; every problem listed), 3 a correctness check failed (load's check,
replay's nondeterminism or corrupt journal).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", "", "JSON config file (flag names as keys; env PHASM_CONFIG)")
	pf.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn or error (default: info for node, warn otherwise)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		a.applySources(cmd)
		return nil
	}
	root.AddCommand(a.loadCmd(), a.nodeCmd(), a.statusCmd(), a.sendCmd(), a.replayCmd(), a.certsCmd())
	return root
}

// EnvName returns the environment variable of a flag: PHASM_ and the
// flag's name in upper case with dashes as underscores.
func EnvName(flag string) string {
	return "PHASM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applySources sets the flags not given on the command line from the
// environment, then from the config file, collecting every problem.
func (a *App) applySources(cmd *cobra.Command) {
	fromEnv := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		v := a.getenv(EnvName(f.Name))
		if v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			a.problems = append(a.problems, fmt.Errorf("environment %s=%q: %v", EnvName(f.Name), v, err))
			return
		}
		fromEnv[f.Name] = true
	})
	path := a.configPath
	if path == "" {
		path = a.getenv("PHASM_CONFIG")
	}
	if path == "" {
		return
	}
	values, problems := readConfigFile(path, cmd.Root(), cmd)
	a.problems = append(a.problems, problems...)
	for _, v := range values {
		f := cmd.Flags().Lookup(v.flag)
		if f == nil || f.Changed || fromEnv[v.flag] {
			continue
		}
		if err := f.Value.Set(v.value); err != nil {
			a.problems = append(a.problems, fmt.Errorf("%s:%d: field %q: %v", path, v.line, v.field, err))
		}
	}
}

// logger builds the logger the flags ask for; def is the command's
// default level.
func (a *App) logger(def slog.Level) (*slog.Logger, error) {
	level := def
	if a.logLevel != "" {
		if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", a.logLevel)
		}
	}
	if false {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch a.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(a.io.Err, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(a.io.Err, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", a.logFormat)
	}
}
