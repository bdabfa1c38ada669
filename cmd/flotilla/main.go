// Command flotilla runs flotilla's systems: the Raft simulator today, and
// the replicated services built on the same consensus core.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// usageError marks errors caused by bad command-line input (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "flotilla:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit status for a failure already reported.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "flotilla",
		Short: "Fault-tolerant distributed systems on a from-scratch Raft core",
		Long: `flotilla holds the classic fault-tolerant distributed systems as runnable
software, all standing on one consensus core written from scratch.

Today it ships a linearizable replicated key-value store (flotilla up starts
a local cluster; flotilla kv, member and leader use it), the pure Raft core
under it with a deterministic simulator, an exhaustive explorer and a nemesis
that try to break it, TritonHTTP (an HTTP/1.1 file server on raw TCP), dsort
(a distributed sort) and MapReduce, each with benchmarks against its usual
peer.`,
		Example: `  flotilla up
  flotilla kv put greeting hello
  flotilla kv get greeting
  flotilla status
  flotilla member list
  flotilla sim raft --seeds 1000
  flotilla nemesis --duration 60s
  flotilla http serve --docroot ./site
  flotilla sort local in.dat out.dat
  flotilla mr run --app wc input.txt
  flotilla bench kv put --clients 64
  flotilla version`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newUpCmd(), newKVCmd(), newStatusCmd(), newMemberCmd(), newLeaderCmd(), newVersionCmd(), newSimCmd(), newExploreCmd(), newBenchCmd(), newHTTPCmd(), newSortCmd(), newNemesisCmd(), newMRCmd())
	asGroup(root)
	return root
}

// newGroup returns a command that only holds subs.
func newGroup(use, short, example string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Example: example}
	cmd.AddCommand(subs...)
	asGroup(cmd)
	return cmd
}

// asGroup makes a command that only holds subcommands print its help when
// run bare and reject unknown subcommands with a usage error.
func asGroup(cmd *cobra.Command) {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %q (see %s --help)", args[0], c.CommandPath(), c.CommandPath())}
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q (see --help)", cmd.CommandPath(), args)}
	}
	return nil
}
