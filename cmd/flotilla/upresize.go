package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/node"
)

// resizeCluster grows or shrinks a running local cluster to n members,
// one member at a time: a new member is started with --join, added as a
// learner, and promoted once it caught up; a member to drop (the highest
// IDs first) is removed, which stops its process, and its data is
// deleted. cluster.yaml and the endpoints file follow each step, so an
// interrupted resize resumes from where it stopped.
func resizeCluster(ctx context.Context, out io.Writer, exe, cfgPath string, o upOpts, cfg *serveConfig, members *[]*upMember) error {
	c, err := kvclient.New(kvclient.Config{Endpoints: clientAddrs(*cfg), AttemptTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 60*time.Second) }
	// Finish what an interrupted resize left: members in cluster.yaml that
	// are not members yet, or still learners.
	sctx, cancel := step()
	current, _, err := c.MemberList(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("listing members: %w", clientError(err))
	}
	for _, mc := range cfg.Members {
		i := slices.IndexFunc(current, func(m kvclient.Member) bool { return m.ID == mc.ID })
		if i >= 0 && !current[i].Learner {
			continue
		}
		if err := addMember(ctx, out, c, mc, i < 0); err != nil {
			return err
		}
	}
	for len(cfg.Members) < o.nodes {
		addrs, err := node.FreeAddrs(3)
		if err != nil {
			return err
		}
		var id uint64 = 1
		for _, m := range cfg.Members {
			id = max(id, m.ID+1)
		}
		mc := memberConfig{ID: id, Peer: addrs[0], Client: addrs[1], Admin: addrs[2]}
		cfg.Members = append(cfg.Members, mc)
		if err := saveUpCluster(cfgPath, o.dataDir, *cfg); err != nil {
			return err
		}
		fmt.Fprintf(out, "flotilla: adding member %d (client %s)\n", id, mc.Client)
		m, err := startMember(exe, cfgPath, o, mc, "--join")
		if err != nil {
			return err
		}
		*members = append(*members, m)
		if err := addMember(ctx, out, c, mc, true); err != nil {
			return err
		}
	}
	for len(cfg.Members) > o.nodes {
		mc := cfg.Members[len(cfg.Members)-1]
		fmt.Fprintf(out, "flotilla: removing member %d\n", mc.ID)
		sctx, cancel := step()
		_, err := c.MemberRemove(sctx, mc.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("removing member %d: %w", mc.ID, clientError(err))
		}
		i := slices.IndexFunc(*members, func(m *upMember) bool { return m.id == mc.ID })
		if i >= 0 {
			m := (*members)[i]
			m.expected = true
			select {
			case <-m.exited:
			case <-time.After(10 * time.Second):
				m.cmd.Process.Kill()
				<-m.exited
			}
			*members = slices.Delete(*members, i, i+1)
		}
		cfg.Members = cfg.Members[:len(cfg.Members)-1]
		if err := saveUpCluster(cfgPath, o.dataDir, *cfg); err != nil {
			return err
		}
		// Its data is stale now; an ID reused later must start empty.
		if err := os.RemoveAll(filepath.Join(o.dataDir, fmt.Sprintf("node%d", mc.ID))); err != nil {
			return err
		}
	}
	return nil
}

// addMember adds mc as a learner (unless it is one already), waits until
// it caught up, and promotes it.
func addMember(ctx context.Context, out io.Writer, c *kvclient.Client, mc memberConfig, add bool) error {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var err error
	if add {
		_, err = c.MemberAdd(sctx, kvclient.Member{ID: mc.ID, PeerAddr: mc.Peer, ClientAddr: mc.Client, Learner: true})
	}
	if err == nil {
		err = waitCaughtUp(sctx, c, mc.Client)
	}
	if err == nil {
		_, err = c.MemberPromote(sctx, mc.ID)
	}
	if err != nil {
		return fmt.Errorf("adding member %d: %w", mc.ID, clientError(err))
	}
	fmt.Fprintf(out, "flotilla: member %d caught up and votes\n", mc.ID)
	return nil
}

// waitCaughtUp polls the member at addr until its applied index reaches
// the leader's commit index.
func waitCaughtUp(ctx context.Context, c *kvclient.Client, addr string) error {
	for {
		_, leader, err := c.MemberList(ctx)
		if err == nil {
			var commit uint64
			for _, ep := range c.Endpoints() {
				if st, err := c.Status(ctx, ep); err == nil && st.MemberId == leader {
					commit = st.CommitIndex
				}
			}
			if st, err := c.Status(ctx, addr); err == nil && commit > 0 && st.AppliedIndex >= commit {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("member at %s did not catch up: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func clientAddrs(cfg serveConfig) []string {
	var eps []string
	for _, m := range cfg.Members {
		eps = append(eps, m.Client)
	}
	return eps
}

// saveUpCluster writes cluster.yaml and the endpoints file.
func saveUpCluster(cfgPath, dir string, cfg serveConfig) error {
	if err := writeServeConfig(cfgPath, cfg); err != nil {
		return fmt.Errorf("writing %s: %w", cfgPath, err)
	}
	eps := clientAddrs(cfg)
	if err := writeFileAtomic(filepath.Join(dir, endpointsFile), []byte(strings.Join(eps, "\n")+"\n")); err != nil {
		return fmt.Errorf("writing the endpoints file: %w", err)
	}
	return nil
}
