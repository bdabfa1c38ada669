package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/flotilla-dev/flotilla/kv/kvserver"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/wal"
)

type serveOpts struct {
	config                          string
	id, clusterID                   uint64
	dataDir                         string
	members                         []string
	listenPeer, listenClient, admin string
	maxKeyBytes, maxValueBytes      int
	tick                            time.Duration
	noSync, leaseReads, join        bool
	autoPromote                     bool
	faultInjection                  bool
	logLevel                        string
}

func newKVServeCmd() *cobra.Command {
	var o serveOpts
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run one member of a KV cluster",
		Long: `Runs one member of a flotilla KV cluster: a Raft member with its write-ahead
log in --data-dir, the gRPC client API, and the admin HTTP endpoint
(/metrics, /status, /debug/pprof) when an admin address is set.

The cluster is described by a YAML file (--config; flotilla up writes one)
and/or flags, which override it. Every member lists all members, each with
a peer address (Raft traffic) and a client address (the API):

  cluster-id: 1234
  members:
    - {id: 1, peer: 127.0.0.1:7001, client: 127.0.0.1:7101, admin: 127.0.0.1:7201}
    - {id: 2, peer: 127.0.0.1:7002, client: 127.0.0.1:7102}
    - {id: 3, peer: 127.0.0.1:7003, client: 127.0.0.1:7103}

SIGINT or SIGTERM stops the member cleanly.`,
		Example: `  flotilla kv serve --config cluster.yaml --id 1 --data-dir data/1
  flotilla kv serve --id 1 --cluster-id 1234 --data-dir data/1 \
    --member 1=127.0.0.1:7001,127.0.0.1:7101,127.0.0.1:7201 \
    --member 2=127.0.0.1:7002,127.0.0.1:7102 --member 3=127.0.0.1:7003,127.0.0.1:7103`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, logger, err := o.resolve(cmd)
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), sc, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "YAML config file (flags override it)")
	f.Uint64Var(&o.id, "id", 0, "this member's ID")
	f.Uint64Var(&o.clusterID, "cluster-id", 0, "the cluster's ID (shared by all members)")
	f.StringVar(&o.dataDir, "data-dir", "", "directory for this member's WAL and snapshots")
	f.StringArrayVar(&o.members, "member", nil, "a member as ID=PEER_ADDR,CLIENT_ADDR[,ADMIN_ADDR]; repeat for each (replaces the config's list)")
	f.StringVar(&o.listenPeer, "listen-peer", "", "address to listen on for Raft peers (default: this member's peer address)")
	f.StringVar(&o.listenClient, "listen-client", "", "address to listen on for clients (default: this member's client address)")
	f.StringVar(&o.admin, "admin", "", "address of the admin HTTP endpoint (default: this member's admin address, if any)")
	f.IntVar(&o.maxKeyBytes, "max-key-bytes", 0, "largest key accepted, at most 4096 (default 4096)")
	f.IntVar(&o.maxValueBytes, "max-value-bytes", 0, "largest value accepted, at most 1048576 (default 1048576)")
	f.DurationVar(&o.tick, "tick", 0, "Raft tick; elections time out after 10-20 ticks (default 100ms)")
	f.BoolVar(&o.noSync, "no-sync", false, "skip fsync (unsafe: acknowledged writes can be lost on a crash)")
	f.BoolVar(&o.autoPromote, "auto-promote-learners", false, "as leader, promote a learner to voter once it is within 100 entries of the leader's log")
	f.BoolVar(&o.join, "join", false, "join a running cluster: --member lists its members and this one; add it with flotilla member add")
	f.BoolVar(&o.leaseReads, "lease-reads", false, "let the leader confirm linearizable reads from its lease, without a heartbeat round (assumes clock rates differ by less than ~10%)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&o.faultInjection, "fault-injection", false, "serve /debug/faults on the admin endpoint to cut peer traffic (testing only, e.g. flotilla nemesis; never in production)")
	return cmd
}

// resolve merges the config file and the flags into a server config.
func (o *serveOpts) resolve(cmd *cobra.Command) (kvserver.Config, *slog.Logger, error) {
	var c serveConfig
	if o.config != "" {
		var err error
		if c, err = loadServeConfig(o.config); err != nil {
			return kvserver.Config{}, nil, err
		}
	}
	set := cmd.Flags().Changed
	if set("id") {
		c.ID = o.id
	}
	if set("cluster-id") {
		c.ClusterID = o.clusterID
	}
	if set("data-dir") {
		c.DataDir = o.dataDir
	}
	if set("member") {
		c.Members = nil
		for _, s := range o.members {
			m, err := parseMember(s)
			if err != nil {
				return kvserver.Config{}, nil, usageError{err}
			}
			c.Members = append(c.Members, m)
		}
	}
	if set("listen-peer") {
		c.Listen.Peer = o.listenPeer
	}
	if set("listen-client") {
		c.Listen.Client = o.listenClient
	}
	if set("admin") {
		c.Listen.Admin = o.admin
	}
	if set("max-key-bytes") {
		c.MaxKeyBytes = o.maxKeyBytes
	}
	if set("max-value-bytes") {
		c.MaxValueBytes = o.maxValueBytes
	}
	if set("tick") {
		c.Tick = o.tick
	}
	if set("no-sync") {
		c.NoSync = o.noSync
	}
	if set("lease-reads") {
		c.LeaseReads = o.leaseReads
	}
	if set("join") {
		c.Join = o.join
	}
	if set("auto-promote-learners") {
		c.AutoPromoteLearners = o.autoPromote
	}
	if set("fault-injection") {
		c.FaultInjection = o.faultInjection
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return kvserver.Config{}, nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)}
	}
	sc, err := c.serverConfig()
	if err != nil {
		if o.config == "" {
			return sc, nil, usageError{err}
		}
		return sc, nil, err
	}
	if c.MaxKeyBytes < 0 || c.MaxValueBytes < 0 {
		return sc, nil, usageError{fmt.Errorf("--max-key-bytes and --max-value-bytes must be positive")}
	}
	if err := checkDataDir(c.DataDir); err != nil {
		return sc, nil, err
	}
	sc.Version = buildinfo.String()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	sc.Logger = logger
	return sc, logger, nil
}

// checkDataDir creates dir if needed and checks that it is writable, so
// that the error names the directory.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data directory %s cannot be created: %w (choose a --data-dir whose parents are directories you can write)", dir, err)
	}
	f, err := os.CreateTemp(dir, ".writable*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w (fix its permissions or choose another --data-dir)", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// runServe runs a member until a signal or a fatal error.
func runServe(ctx context.Context, sc kvserver.Config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := kvserver.Start(sc)
	if err != nil {
		return explainStartError(sc, err)
	}
	select {
	case <-ctx.Done():
		logger.Info("stopping", "reason", "signal")
		if err := s.Stop(); err != nil {
			return fmt.Errorf("stopping: %w", err)
		}
		return nil
	case <-s.Done():
		err := s.Err()
		if errors.Is(err, node.ErrRemoved) {
			logger.Info("this member was removed from the cluster; exiting")
			return nil
		}
		if err != nil {
			return fmt.Errorf("member %d stopped: %w", sc.ID, err)
		}
		return nil
	}
}

// explainStartError adds what the user can do about common start failures.
func explainStartError(sc kvserver.Config, err error) error {
	switch {
	case strings.Contains(err.Error(), "address already in use"):
		return fmt.Errorf("%w (another process is using the port; is a member already running?)", err)
	case errors.Is(err, wal.ErrClusterMismatch):
		return fmt.Errorf("%w (data directory %s was created for another cluster or member ID; point --data-dir at this member's own directory, or an empty one)", err, sc.DataDir)
	case errors.Is(err, wal.ErrLocked):
		return fmt.Errorf("%w (is this member already running?)", err)
	}
	return err
}
