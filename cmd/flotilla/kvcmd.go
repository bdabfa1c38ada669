package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/kv"
	"github.com/flotilla-dev/flotilla/kv/kvclient"
)

// defaultUpDir is where flotilla up keeps a local cluster.
const defaultUpDir = "flotilla-data"

// endpointsFile is the file in an up data directory listing the members'
// client addresses, one per line.
const endpointsFile = "endpoints"

// clientOpts are the flags every client command shares.
type clientOpts struct {
	endpoints string
	dataDir   string
	timeout   time.Duration
}

// resolveEndpoints finds the endpoints: the flag, then the environment,
// then a local up cluster's endpoints file.
func (o *clientOpts) resolveEndpoints() ([]string, error) {
	if o.endpoints != "" {
		return splitEndpoints(o.endpoints, "--endpoints")
	}
	if env := os.Getenv("FLOTILLA_ENDPOINTS"); env != "" {
		return splitEndpoints(env, "FLOTILLA_ENDPOINTS")
	}
	path := filepath.Join(o.dataDir, endpointsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageError{fmt.Errorf("no endpoints: pass --endpoints, set FLOTILLA_ENDPOINTS, or start a local cluster with `flotilla up` (no %s)", path)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading endpoints: %w", err)
	}
	eps, err := splitEndpoints(strings.ReplaceAll(string(b), "\n", ","), path)
	if err != nil {
		return nil, err
	}
	return eps, nil
}

func splitEndpoints(s, from string) ([]string, error) {
	var eps []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if err := checkHostPort(e); err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", from, err)}
		}
		eps = append(eps, e)
	}
	if len(eps) == 0 {
		return nil, usageError{fmt.Errorf("%s lists no endpoints", from)}
	}
	return eps, nil
}

// client opens a client and a context bounded by --timeout.
func (o *clientOpts) client(cmd *cobra.Command) (*kvclient.Client, context.Context, context.CancelFunc, error) {
	eps, err := o.resolveEndpoints()
	if err != nil {
		return nil, nil, nil, err
	}
	if o.timeout <= 0 {
		return nil, nil, nil, usageError{fmt.Errorf("--timeout must be positive, got %v", o.timeout)}
	}
	c, err := kvclient.New(kvclient.Config{Endpoints: eps, AttemptTimeout: min(3*time.Second, o.timeout)})
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	return c, ctx, func() { cancel(); c.Close() }, nil
}

// clientError turns a client error into what the user reads.
func clientError(err error) error {
	var ce *kvclient.Error
	if errors.As(err, &ce) && ce.Cause != nil {
		return fmt.Errorf("no member answered in time (%v); last error from %s: %s", ce.Cause, ce.Endpoint, ce.Msg)
	}
	if errors.As(err, &ce) {
		return fmt.Errorf("%s", ce.Msg)
	}
	return err
}

func newKVCmd() *cobra.Command {
	var co clientOpts
	var cons string
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a key's value",
		Long: `Prints the value of KEY followed by a newline. A missing key is an error
(exit status 1). Reads are linearizable unless --consistency s.`,
		Example: "  flotilla kv get greeting\n  flotilla kv get greeting --consistency s --endpoints 127.0.0.1:7102",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ro, err := readOptions(cons)
			if err != nil {
				return err
			}
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			e, found, err := c.Get(ctx, []byte(args[0]), ro...)
			if err != nil {
				return clientError(err)
			}
			if !found {
				return fmt.Errorf("key %q not found", args[0])
			}
			out := cmd.OutOrStdout()
			out.Write(e.Value)
			fmt.Fprintln(out)
			return nil
		},
	}
	get.Flags().StringVar(&cons, "consistency", "l", "l: linearizable (through the leader), s: serializable (any member, may lag)")

	put := co.valueWriteCmd("put KEY [VALUE]", "Set a key (the value is read from stdin when not given)",
		"  flotilla kv put greeting hello\n  flotilla kv put config < config.json", (*kvclient.Client).Put)
	appendCmd := co.valueWriteCmd("append KEY [VALUE]", "Append to a key's value, creating it if missing",
		"  flotilla kv append log 'line 1\n'", (*kvclient.Client).Append)
	del := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete"},
		Short:   "Delete a key; prints how many keys were deleted (0 or 1)",
		Example: "  flotilla kv del greeting",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			deleted, err := c.Delete(ctx, []byte(args[0]))
			if err != nil {
				return clientError(err)
			}
			n := 0
			if deleted {
				n = 1
			}
			fmt.Fprintln(cmd.OutOrStdout(), n)
			return nil
		},
	}
	root := newGroup("kv", "The replicated key-value store: serve a member, read and write keys",
		`  flotilla kv serve --config cluster.yaml --id 1
  flotilla kv put greeting hello
  flotilla kv get greeting`,
		newKVServeCmd(), get, put, appendCmd, del, newKVCASCmd(&co), newKVScanCmd(&co))
	for _, sub := range []*cobra.Command{get, put, appendCmd, del} {
		co.registerOn(sub)
	}
	return root
}

// valueWriteCmd is a command that writes KEY with VALUE (or stdin) and
// prints the key's new version: put and append.
func (co *clientOpts) valueWriteCmd(use, short, example string, write func(*kvclient.Client, context.Context, []byte, []byte) (uint64, error)) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Example: example, Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := valueArg(cmd, args)
			if err != nil {
				return err
			}
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			v, err := write(c, ctx, []byte(args[0]), value)
			if err != nil {
				return clientError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK version=%d\n", v)
			return nil
		},
	}
}

// readOptions parses --consistency.
func readOptions(cons string) ([]kvclient.ReadOption, error) {
	switch cons {
	case "l", "linearizable":
		return nil, nil
	case "s", "serializable":
		return []kvclient.ReadOption{kvclient.Serializable()}, nil
	}
	return nil, usageError{fmt.Errorf("--consistency %q: want l (linearizable) or s (serializable)", cons)}
}

// registerOn adds the client flags to one command.
func (o *clientOpts) registerOn(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.endpoints, "endpoints", "", "comma-separated client addresses of members (default: $FLOTILLA_ENDPOINTS, else the endpoints file of a local flotilla up cluster)")
	f.StringVar(&o.dataDir, "data-dir", defaultUpDir, "the local flotilla up cluster whose endpoints file is used when no endpoints are given")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up after this long (the client retries through elections until then)")
}

// valueArg returns the value argument, or reads it from stdin (bounded).
func valueArg(cmd *cobra.Command, args []string) ([]byte, error) {
	if len(args) == 2 {
		if len(args[1]) > kv.MaxValueBytes {
			return nil, usageError{fmt.Errorf("value is %d bytes; the limit is %d", len(args[1]), kv.MaxValueBytes)}
		}
		return []byte(args[1]), nil
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(cmd.InOrStdin()), kv.MaxValueBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the value from stdin: %w", err)
	}
	if len(b) > kv.MaxValueBytes {
		return nil, usageError{fmt.Errorf("value on stdin is over the limit of %d bytes", kv.MaxValueBytes)}
	}
	return b, nil
}

func newKVCASCmd(co *clientOpts) *cobra.Command {
	var expect, expectVersion string
	var absent bool
	cmd := &cobra.Command{
		Use:   "cas KEY NEW_VALUE (--expect VALUE | --expect-version N | --expect-absent)",
		Short: "Compare and swap: write a key only if it has the expected value or version",
		Long: `Writes NEW_VALUE to KEY only if the key currently has the value --expect,
the version --expect-version (0: absent), or does not exist (--expect-absent).
Prints the new version; when the comparison fails, prints the key's current
state to stderr and exits with status 1.`,
		Example: `  flotilla kv cas counter 2 --expect 1
  flotilla kv cas lock me --expect-absent
  flotilla kv cas config v2 --expect-version 17`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e kvclient.Expect
			n := 0
			f := cmd.Flags()
			if f.Changed("expect") {
				e, n = kvclient.ExpectValue([]byte(expect)), n+1
			}
			if f.Changed("expect-version") {
				v, err := strconv.ParseUint(expectVersion, 10, 64)
				if err != nil {
					return usageError{fmt.Errorf("--expect-version %q: want a non-negative integer", expectVersion)}
				}
				e, n = kvclient.ExpectVersion(v), n+1
			}
			if absent {
				e, n = kvclient.ExpectAbsent(), n+1
			}
			if n != 1 {
				return usageError{errors.New("give exactly one of --expect, --expect-version and --expect-absent")}
			}
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := c.CompareAndSwap(ctx, []byte(args[0]), []byte(args[1]), e)
			if err != nil {
				return clientError(err)
			}
			if !res.Swapped {
				if !res.Found {
					return fmt.Errorf("compare failed: key %q does not exist", args[0])
				}
				return fmt.Errorf("compare failed: key %q has version %d and value %q", args[0], res.Version, res.Value)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK version=%d\n", res.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&expect, "expect", "", "the value the key must have")
	cmd.Flags().StringVar(&expectVersion, "expect-version", "", "the version the key must have (0: absent)")
	cmd.Flags().BoolVar(&absent, "expect-absent", false, "the key must not exist")
	co.registerOn(cmd)
	return cmd
}

func newKVScanCmd(co *clientOpts) *cobra.Command {
	var end, cons string
	var prefix, keysOnly, withVersion bool
	var limit int
	cmd := &cobra.Command{
		Use:   "scan [START]",
		Short: "List keys in a range or with a prefix, in byte order",
		Long: `Lists the keys from START (inclusive; default the first key) to --end
(exclusive; default no end), or every key beginning with START when
--prefix is set, one "key<TAB>value" line each. At most --limit keys are
listed; when more remain, a note on stderr says where to continue.`,
		Example: `  flotilla kv scan
  flotilla kv scan user/ --prefix --keys-only
  flotilla kv scan a --end m --limit 10`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var start []byte
			if len(args) == 1 {
				start = []byte(args[0])
			}
			if prefix && end != "" {
				return usageError{errors.New("--prefix and --end cannot be combined")}
			}
			if limit < 0 || limit > kv.MaxRangeLimit {
				return usageError{fmt.Errorf("--limit must be 1 to %d (0: the maximum), got %d", kv.MaxRangeLimit, limit)}
			}
			ro, err := readOptions(cons)
			if err != nil {
				return err
			}
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			kvs, more, err := c.Range(ctx, start, kvclient.RangeOptions{End: []byte(end), Prefix: prefix, Limit: limit}, ro...)
			if err != nil {
				return clientError(err)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			for _, e := range kvs {
				w.Write(e.Key)
				if withVersion {
					fmt.Fprintf(w, "\t%d", e.Version)
				}
				if !keysOnly {
					w.WriteByte('\t')
					w.Write(e.Value)
				}
				w.WriteByte('\n')
			}
			w.Flush()
			if more && len(kvs) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "more keys remain after %q (continue with: flotilla kv scan %q ...)\n", kvs[len(kvs)-1].Key, string(kvs[len(kvs)-1].Key)+"\x00")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&end, "end", "", "exclusive end of the range")
	f.BoolVar(&prefix, "prefix", false, "list the keys that begin with START")
	f.IntVar(&limit, "limit", 0, "list at most this many keys (0: the maximum, 1000)")
	f.BoolVar(&keysOnly, "keys-only", false, "print keys only")
	f.BoolVar(&withVersion, "versions", false, "print each key's version after the key")
	f.StringVar(&cons, "consistency", "l", "l: linearizable, s: serializable")
	co.registerOn(cmd)
	return cmd
}

// exactArgs and rangeArgs check positional arguments with usage errors.
func exactArgs(n int) cobra.PositionalArgs { return rangeArgs(n, n) }

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			want := strconv.Itoa(lo)
			if hi != lo {
				want = fmt.Sprintf("%d to %d", lo, hi)
			}
			return usageError{fmt.Errorf("%s takes %s arguments, got %d (usage: %s)", cmd.CommandPath(), want, len(args), cmd.UseLine())}
		}
		return nil
	}
}
