package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flotilla-dev/flotilla/kv/kvserver"
)

// serveConfig is the YAML configuration of one KV member (flotilla kv
// serve --config). flotilla up writes one shared by all its members, each
// picking itself with --id. Unknown fields are errors.
type serveConfig struct {
	// ClusterID names the cluster; every member must share it, and a data
	// directory created for one cluster refuses to open for another.
	ClusterID uint64 `yaml:"cluster-id"`
	// ID is this member's ID (usually given with --id instead).
	ID uint64 `yaml:"id,omitempty"`
	// DataDir holds this member's WAL and snapshots.
	DataDir string `yaml:"data-dir,omitempty"`
	// Members lists every voter with its addresses.
	Members []memberConfig `yaml:"members"`
	// Listen overrides the addresses this member listens on (for example
	// 0.0.0.0:7101); by default it listens on its own member addresses.
	Listen listenConfig `yaml:"listen,omitempty"`
	// MaxKeyBytes and MaxValueBytes bound client keys and values.
	MaxKeyBytes   int `yaml:"max-key-bytes,omitempty"`
	MaxValueBytes int `yaml:"max-value-bytes,omitempty"`
	// Tick is the Raft tick; the election timeout is 10-20 ticks.
	Tick time.Duration `yaml:"tick,omitempty"`
	// SnapshotEntries snapshots the store every this many entries.
	SnapshotEntries int `yaml:"snapshot-entries,omitempty"`
	// NoSync skips fsync: acknowledged writes can be lost on a crash.
	NoSync bool `yaml:"no-sync,omitempty"`
	// LeaseReads confirms linearizable reads from the leader's lease.
	LeaseReads bool `yaml:"lease-reads,omitempty"`
	// Join makes this member join a running cluster (see --join).
	Join bool `yaml:"join,omitempty"`
	// AutoPromoteLearners promotes caught-up learners to voters.
	AutoPromoteLearners bool `yaml:"auto-promote-learners,omitempty"`
	// FaultInjection serves /debug/faults on the admin endpoint (see
	// --fault-injection); for tests only.
	FaultInjection bool `yaml:"fault-injection,omitempty"`
}

type memberConfig struct {
	ID     uint64 `yaml:"id"`
	Peer   string `yaml:"peer"`
	Client string `yaml:"client"`
	// Admin is the member's admin HTTP address (metrics, status, pprof);
	// optional.
	Admin string `yaml:"admin,omitempty"`
}

type listenConfig struct {
	Peer   string `yaml:"peer,omitempty"`
	Client string `yaml:"client,omitempty"`
	Admin  string `yaml:"admin,omitempty"`
}

// maxConfigBytes bounds a config file.
const maxConfigBytes = 1 << 20

// loadServeConfig reads a YAML config strictly.
func loadServeConfig(path string) (serveConfig, error) {
	var c serveConfig
	st, err := os.Stat(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if st.Size() > maxConfigBytes {
		return c, fmt.Errorf("config %s: %d bytes; a config is at most %d", path, st.Size(), maxConfigBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: empty file", path)
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// writeServeConfig writes c to path atomically.
func writeServeConfig(path string, c serveConfig) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	b = append([]byte("# flotilla KV cluster configuration (written by flotilla up; each member is started with --id)\n"), b...)
	return writeFileAtomic(path, b)
}

// parseMember parses a --member flag: ID=PEER,CLIENT[,ADMIN].
func parseMember(s string) (memberConfig, error) {
	id, addrs, ok := strings.Cut(s, "=")
	parts := strings.Split(addrs, ",")
	if !ok || len(parts) < 2 || len(parts) > 3 {
		return memberConfig{}, fmt.Errorf("--member %q: want ID=PEER_ADDR,CLIENT_ADDR[,ADMIN_ADDR], e.g. 1=127.0.0.1:7001,127.0.0.1:7101", s)
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || n == 0 {
		return memberConfig{}, fmt.Errorf("--member %q: the ID must be a positive integer", s)
	}
	m := memberConfig{ID: n, Peer: parts[0], Client: parts[1]}
	if len(parts) == 3 {
		m.Admin = parts[2]
	}
	for _, a := range parts {
		if err := checkHostPort(a); err != nil {
			return memberConfig{}, fmt.Errorf("--member %q: %w", s, err)
		}
	}
	return m, nil
}

// checkHostPort checks that a is host:port with a numeric port.
func checkHostPort(a string) error {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return fmt.Errorf("address %q has no port (want host:port)", a)
	}
	p, err := strconv.Atoi(a[i+1:])
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("address %q has an invalid port", a)
	}
	return nil
}

// serverConfig turns a validated serveConfig into a kvserver.Config.
func (c serveConfig) serverConfig() (kvserver.Config, error) {
	sc := kvserver.Config{ID: c.ID, ClusterID: c.ClusterID, DataDir: c.DataDir,
		ListenPeer: c.Listen.Peer, ListenClient: c.Listen.Client, ListenAdmin: c.Listen.Admin,
		MaxKeyBytes: c.MaxKeyBytes, MaxValueBytes: c.MaxValueBytes}
	switch {
	case c.ClusterID == 0:
		return sc, errors.New("no cluster ID: set cluster-id in the config or pass --cluster-id")
	case c.ID == 0:
		return sc, errors.New("no member ID: set id in the config or pass --id")
	case c.DataDir == "":
		return sc, errors.New("no data directory: set data-dir in the config or pass --data-dir")
	case len(c.Members) == 0:
		return sc, errors.New("no members: list them under members: in the config or pass --member for each")
	}
	for _, m := range c.Members {
		for _, a := range []string{m.Peer, m.Client} {
			if err := checkHostPort(a); err != nil {
				return sc, fmt.Errorf("member %d: %w", m.ID, err)
			}
		}
		sc.Members = append(sc.Members, kvserver.Member{ID: m.ID, PeerAddr: m.Peer, ClientAddr: m.Client})
		if m.ID == c.ID && sc.ListenAdmin == "" {
			sc.ListenAdmin = m.Admin
		}
	}
	sc.Node.TickInterval = c.Tick
	sc.Node.SnapshotEntries = c.SnapshotEntries
	sc.Node.NoSync = c.NoSync
	sc.Node.LeaseReads = c.LeaseReads
	sc.Join = c.Join
	sc.Node.AutoPromoteLearners = c.AutoPromoteLearners
	sc.FaultInjection = c.FaultInjection
	return sc, nil
}
