// Package kvserver serves the flotilla KV API (proto/kvpb) from one member
// of a replicated group: a kv.Store under an rsm.Host (Raft, a WAL, the
// peer transport), a gRPC server for clients and, optionally, the admin
// HTTP endpoint (metrics, status, pprof).
//
// Writes go through the leader's log; a follower refuses them with
// codes.FailedPrecondition and a kvpb.NotLeader detail naming the leader's
// client address. Linearizable reads are answered by any member that can
// reach the leader: it waits for a ReadIndex the leader confirmed with a
// quorum (dissertation §6.4) and for its own state to apply it, then reads
// its local store. Serializable reads read the local store at once.
package kvserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/flotilla-dev/flotilla/internal/admin"
	"github.com/flotilla-dev/flotilla/kv"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/proto/kvpb"
	"github.com/flotilla-dev/flotilla/rsm"
)

// Member is one voter of the group and its addresses.
type Member struct {
	ID uint64
	// PeerAddr is where the member's Raft transport listens.
	PeerAddr string
	// ClientAddr is where its gRPC API listens; followers name it in
	// redirects.
	ClientAddr string
}

// Config configures a Server.
type Config struct {
	// ID is this member's ID; ClusterID names the group. Both are recorded
	// in the data directory, which refuses to open for another pair.
	ID, ClusterID uint64
	// Members lists every voter, including this one. With Join, it lists
	// the members of the running cluster to contact, plus this one.
	Members []Member
	// Join starts a member that joins a running cluster: it becomes a
	// member once a Cluster.MemberAdd on the leader adds it (node.Config.Join).
	Join bool
	// DataDir holds the WAL and snapshots.
	DataDir string
	// ListenPeer and ListenClient are the addresses to listen on; default
	// this member's PeerAddr and ClientAddr. ListenAdmin is the admin HTTP
	// address; empty disables it.
	ListenPeer, ListenClient, ListenAdmin string
	// MaxKeyBytes and MaxValueBytes bound client keys and values; defaults
	// and maxima kv.MaxKeyBytes (4 KiB) and kv.MaxValueBytes (1 MiB).
	MaxKeyBytes, MaxValueBytes int
	// ReadThroughLog makes linearizable reads go through the log like
	// writes (one entry each) instead of ReadIndex; for comparisons.
	ReadThroughLog bool
	// Version is reported by Status.
	Version string
	// Node tunes the Raft member (ticks, snapshots, NoSync, Seed); its ID,
	// ClusterID, Peers, Listen and DataDir are set from the fields above.
	Node node.Config
	// Sessions configures the exactly-once session table.
	Sessions rsm.Options
	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
	// FaultInjection installs a transport.Faults on the member's transport
	// and serves it at the admin endpoint's /debug/faults, so that a test
	// or the nemesis can cut its peer traffic. Never enable it in
	// production: anyone who reaches the admin port can partition the
	// member.
	FaultInjection bool
}

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("kvserver: invalid config")

func (c Config) withDefaults() (Config, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxKeyBytes <= 0 || c.MaxKeyBytes > kv.MaxKeyBytes {
		if c.MaxKeyBytes > kv.MaxKeyBytes {
			return c, fmt.Errorf("%w: max key bytes %d is over the store's limit %d", ErrInvalidConfig, c.MaxKeyBytes, kv.MaxKeyBytes)
		}
		c.MaxKeyBytes = kv.MaxKeyBytes
	}
	if c.MaxValueBytes <= 0 || c.MaxValueBytes > kv.MaxValueBytes {
		if c.MaxValueBytes > kv.MaxValueBytes {
			return c, fmt.Errorf("%w: max value bytes %d is over the store's limit %d", ErrInvalidConfig, c.MaxValueBytes, kv.MaxValueBytes)
		}
		c.MaxValueBytes = kv.MaxValueBytes
	}
	seen := map[uint64]bool{}
	self := false
	for _, m := range c.Members {
		if m.ID == 0 || seen[m.ID] {
			return c, fmt.Errorf("%w: member IDs must be non-zero and unique (got %d twice or zero)", ErrInvalidConfig, m.ID)
		}
		seen[m.ID] = true
		if m.PeerAddr == "" || m.ClientAddr == "" {
			return c, fmt.Errorf("%w: member %d needs both a peer and a client address", ErrInvalidConfig, m.ID)
		}
		if m.ID == c.ID {
			self = true
			if c.ListenPeer == "" {
				c.ListenPeer = m.PeerAddr
			}
			if c.ListenClient == "" {
				c.ListenClient = m.ClientAddr
			}
		}
	}
	if c.ID == 0 {
		return c, fmt.Errorf("%w: the member ID must be non-zero", ErrInvalidConfig)
	}
	if !self {
		return c, fmt.Errorf("%w: member %d is not in the member list", ErrInvalidConfig, c.ID)
	}
	return c, nil
}

// Server is one running KV member.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *kv.Store
	host    *rsm.Host
	members map[uint64]Member

	grpc     *grpc.Server
	clientLn net.Listener
	adminLn  net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	stopOnce sync.Once
	stopErr  error
	done     chan struct{}
}

// Start opens the data directory, starts the Raft member and then the
// client and admin listeners. On error nothing is left running.
func Start(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("member", cfg.ID), store: kv.NewStore(),
		members: map[uint64]Member{}, done: make(chan struct{})}
	nc := cfg.Node
	nc.ID, nc.ClusterID, nc.DataDir, nc.Listen = cfg.ID, cfg.ClusterID, cfg.DataDir, cfg.ListenPeer
	nc.Join = cfg.Join
	nc.Peers = map[uint64]string{}
	for _, m := range cfg.Members {
		s.members[m.ID] = m
		nc.Peers[m.ID] = m.PeerAddr
	}
	if nc.Logger == nil {
		nc.Logger = cfg.Logger
	}

	// Listen first, so that a taken port fails before the data directory
	// is opened and locked.
	s.clientLn, err = net.Listen("tcp", cfg.ListenClient)
	if err != nil {
		return nil, fmt.Errorf("kvserver: client address: %w", err)
	}
	if cfg.ListenAdmin != "" {
		if s.adminLn, err = net.Listen("tcp", cfg.ListenAdmin); err != nil {
			s.clientLn.Close()
			return nil, fmt.Errorf("kvserver: admin address: %w", err)
		}
	}
	s.host, err = rsm.Start(nc, s.store, cfg.Sessions)
	if err != nil {
		s.closeListeners()
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(2*kv.MaxCommandBytes), grpc.MaxSendMsgSize(2*kv.MaxResultBytes))
	kvpb.RegisterKVServer(s.grpc, &api{s: s})
	kvpb.RegisterClusterServer(s.grpc, &clusterAPI{s: s})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpc.Serve(s.clientLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("client API stopped", "err", err)
		}
	}()
	if s.adminLn != nil {
		h, err := admin.Handler(admin.Config{Node: s.host.Node(), Status: s.serviceStatus, Faults: s.faults()})
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := admin.Serve(ctx, s.adminLn, h); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("admin endpoint stopped", "err", err)
			}
		}()
	}
	// A node that fails (a disk error) takes the server down with it.
	go func() {
		select {
		case <-s.host.Node().Done():
			switch err := s.host.Node().Err(); {
			case errors.Is(err, node.ErrRemoved):
				s.log.Info("removed from the cluster; stopping")
			case err != nil:
				s.log.Error("raft member failed; stopping", "err", err)
			}
			s.Stop()
		case <-s.done:
		}
	}()
	s.log.Info("serving", "client", s.ClientAddr(), "peer", s.host.Node().Addr(), "admin", s.AdminAddr())
	return s, nil
}

func (s *Server) closeListeners() {
	s.clientLn.Close()
	if s.adminLn != nil {
		s.adminLn.Close()
	}
}

// ClientAddr returns the address the gRPC API listens on.
func (s *Server) ClientAddr() string { return s.clientLn.Addr().String() }

// PeerAddr returns the address the Raft transport listens on.
func (s *Server) PeerAddr() string { return s.host.Node().Addr() }

// AdminAddr returns the admin HTTP address, or "" when it is disabled.
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Host returns the replicated host, for tests and tools.
func (s *Server) Host() *rsm.Host { return s.host }

// Store returns the member's local store (read-only use).
func (s *Server) Store() *kv.Store { return s.store }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns why the server stopped: nil after Stop, the Raft member's
// fatal error otherwise. Valid after Done is closed.
func (s *Server) Err() error {
	<-s.done
	return s.host.Node().Err()
}

// Stop stops accepting clients, waits briefly for requests in flight,
// stops the Raft member (flushing its log) and the admin endpoint. It is
// safe to call more than once and from several goroutines.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			s.grpc.Stop() // a request waiting on a commit that cannot happen
		}
		s.stopErr = s.host.Stop()
		s.cancel()
		s.wg.Wait()
		close(s.done)
	})
	return s.stopErr
}

// serviceStatus is the KV part of the admin /status document.
func (s *Server) serviceStatus() any {
	return map[string]any{
		"keys":        s.store.Len(),
		"state_hash":  fmt.Sprintf("%016x", s.store.Hash()),
		"sessions":    s.host.Machine().Sessions(),
		"client_addr": s.ClientAddr(),
		"members":     s.memberList(),
		"removed":     errors.Is(s.host.Node().Err(), node.ErrRemoved),
	}
}
