package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/node"
)

// clusterFile is the cluster configuration flotilla up keeps in its data
// directory; every member is started from it.
const clusterFile = "cluster.yaml"

type upOpts struct {
	nodes   int
	dataDir string
	noSync  bool
}

func newUpCmd() *cobra.Command {
	var o upOpts
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local KV cluster: N member processes on 127.0.0.1",
		Long: `Starts a local flotilla KV cluster of --nodes members, each a separate
flotilla kv serve process listening on 127.0.0.1, with its data under
--data-dir. It prints each member's client and admin address, writes the
client addresses to DATA_DIR/endpoints (which the kv and status commands
use when given no endpoints), and stays in the foreground. Ctrl-C stops
every member cleanly.

The first run picks free ports and writes DATA_DIR/cluster.yaml; later runs
read it and resume the same cluster, with the same data and addresses.
Each member logs to DATA_DIR/nodeN.log.

With --nodes on an existing cluster, flotilla up resizes it once it runs:
new members join as learners and are promoted when they caught up; the
members with the highest IDs are removed (their data is deleted).`,
		Example: `  flotilla up
  flotilla up --nodes 5 --data-dir /tmp/fl5
  flotilla up --nodes 5   # grow the cluster in ./flotilla-data to 5 members
  # in another terminal:
  flotilla kv put greeting hello
  flotilla kv get greeting
  flotilla status`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.nodes < 1 || o.nodes > 9 {
				return usageError{fmt.Errorf("--nodes must be 1 to 9, got %d", o.nodes)}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runUp(ctx, cmd, o)
		},
	}
	cmd.Flags().IntVar(&o.nodes, "nodes", 3, "number of members (1 to 9); for an existing cluster, grow or shrink it to this size")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", defaultUpDir, "directory for the cluster's configuration, data and logs")
	cmd.Flags().BoolVar(&o.noSync, "no-sync", false, "start members without fsync (unsafe: for experiments only)")
	return cmd
}

// member is one running member process.
type upMember struct {
	id      uint64
	cfg     memberConfig
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // set before exited is closed
	// expected is set for a member being removed: its exit is no surprise.
	expected bool
}

func runUp(ctx context.Context, cmd *cobra.Command, o upOpts) error {
	out := cmd.OutOrStdout()
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDir(filepath.Join(o.dataDir, "up.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	cfgPath := filepath.Join(o.dataDir, clusterFile)
	cfg, created, err := loadOrCreateCluster(cfgPath, o)
	if err != nil {
		return err
	}
	if !cmd.Flags().Changed("nodes") {
		o.nodes = len(cfg.Members) // resume at the size it has
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the flotilla binary to start members: %w", err)
	}
	eps := clientAddrs(cfg)
	if err := saveUpCluster(cfgPath, o.dataDir, cfg); err != nil {
		return err
	}

	verb := "resuming"
	if created {
		verb = "starting a new"
	}
	fmt.Fprintf(out, "flotilla: %s %d-member cluster in %s\n", verb, len(cfg.Members), o.dataDir)
	var members []*upMember
	stopAll := func() { stopMembers(members, out) }
	for _, mc := range cfg.Members {
		var extra []string
		if _, err := os.Stat(filepath.Join(o.dataDir, fmt.Sprintf("node%d", mc.ID))); !created && errors.Is(err, os.ErrNotExist) {
			// Added to an existing cluster by an interrupted resize: it
			// joins, it does not found a cluster of its own.
			extra = append(extra, "--join")
		}
		m, err := startMember(exe, cfgPath, o, mc, extra...)
		if err != nil {
			stopAll()
			return err
		}
		members = append(members, m)
	}
	if err := waitReady(ctx, members, eps); err != nil {
		stopAll()
		if ctx.Err() != nil {
			fmt.Fprintln(out, "flotilla: interrupted while starting; all members stopped")
			return nil
		}
		return err
	}
	if !created {
		if err := resizeCluster(ctx, out, exe, cfgPath, o, &cfg, &members); err != nil {
			stopAll()
			if ctx.Err() != nil {
				fmt.Fprintln(out, "flotilla: interrupted while resizing; all members stopped (run flotilla up again to finish)")
				return nil
			}
			return err
		}
	}
	for _, m := range members {
		admin := ""
		if m.cfg.Admin != "" {
			admin = "  admin http://" + m.cfg.Admin
		}
		fmt.Fprintf(out, "  member %d  client %s%s  (log %s)\n", m.id, m.cfg.Client, admin, m.logPath)
	}
	fmt.Fprintf(out, "endpoints in %s; in another terminal try:\n  flotilla kv put greeting hello\n  flotilla kv get greeting\n  flotilla status\nCtrl-C stops the cluster.\n",
		filepath.Join(o.dataDir, endpointsFile))

	// Stay in the foreground until a signal, reporting members that exit.
	alive := len(members)
	exited := make(chan *upMember, len(members))
	for _, m := range members {
		go func() { <-m.exited; exited <- m }()
	}
	for alive > 0 {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "flotilla: stopping the cluster")
			stopAll()
			fmt.Fprintln(out, "flotilla: all members stopped; run flotilla up again to resume")
			return nil
		case m := <-exited:
			alive--
			if m.expected {
				continue
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "flotilla: member %d exited unexpectedly (%v); its log %s ends:\n%s", m.id, m.err, m.logPath, logTail(m.logPath, 5))
		}
	}
	return errors.New("every member exited")
}

// loadOrCreateCluster reads DATA_DIR/cluster.yaml or creates it with free
// ports and a random cluster ID.
func loadOrCreateCluster(path string, o upOpts) (serveConfig, bool, error) {
	c, err := loadServeConfig(path)
	if err == nil {
		if c.NoSync != o.noSync {
			c.NoSync = o.noSync
		}
		return c, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return c, false, err
	}
	addrs, err := node.FreeAddrs(3 * o.nodes)
	if err != nil {
		return c, false, fmt.Errorf("finding free ports: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return c, false, err
	}
	c = serveConfig{ClusterID: binary.LittleEndian.Uint64(b[:])>>1 | 1, NoSync: o.noSync}
	for i := range o.nodes {
		c.Members = append(c.Members, memberConfig{ID: uint64(i + 1), Peer: addrs[3*i], Client: addrs[3*i+1], Admin: addrs[3*i+2]})
	}
	if err := writeServeConfig(path, c); err != nil {
		return c, false, fmt.Errorf("writing %s: %w", path, err)
	}
	return c, true, nil
}

func startMember(exe, cfgPath string, o upOpts, mc memberConfig, extra ...string) (*upMember, error) {
	m := &upMember{id: mc.ID, cfg: mc, exited: make(chan struct{}),
		logPath: filepath.Join(o.dataDir, fmt.Sprintf("node%d.log", mc.ID))}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("member %d log: %w", mc.ID, err)
	}
	args := []string{"kv", "serve", "--config", cfgPath, "--id", strconv.FormatUint(mc.ID, 10),
		"--data-dir", filepath.Join(o.dataDir, fmt.Sprintf("node%d", mc.ID))}
	if o.noSync {
		args = append(args, "--no-sync")
	}
	args = append(args, extra...)
	m.cmd = exec.Command(exe, args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = childProcAttr()
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting member %d: %w", mc.ID, err)
	}
	go func() {
		m.err = m.cmd.Wait()
		logf.Close()
		close(m.exited)
	}()
	return m, nil
}

// waitReady waits until every member answers and one is the leader.
func waitReady(ctx context.Context, members []*upMember, eps []string) error {
	c, err := kvclient.New(kvclient.Config{Endpoints: eps, AttemptTimeout: time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, m := range members {
			select {
			case <-m.exited:
				return fmt.Errorf("member %d exited while starting (%v); its log %s ends:\n%s", m.id, m.err, m.logPath, logTail(m.logPath, 10))
			default:
			}
		}
		ready, leader := 0, false
		for _, ep := range eps {
			if r, err := c.Status(ctx, ep); err == nil {
				ready++
				leader = leader || r.Role == "leader"
			}
		}
		if ready == len(eps) && leader {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not elect a leader within 30s (%d of %d members answering); see the logs in %s", ready, len(eps), filepath.Dir(members[0].logPath))
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted while starting")
		case <-tick.C:
		}
	}
}

// stopMembers sends SIGTERM to every running member and waits; a member
// that does not stop within 10 s is killed.
func stopMembers(members []*upMember, out io.Writer) {
	for _, m := range members {
		m.cmd.Process.Signal(syscall.SIGTERM)
	}
	timeout := time.After(10 * time.Second)
	for _, m := range members {
		select {
		case <-m.exited:
		case <-timeout:
			fmt.Fprintf(out, "flotilla: member %d did not stop in 10s; killing it\n", m.id)
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (no log: " + err.Error() + ")\n"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var s strings.Builder
	for _, l := range lines {
		s.WriteString("  ")
		s.Write(l)
		s.WriteByte('\n')
	}
	return s.String()
}
