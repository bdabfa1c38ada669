package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
)

// memberStatus is one row of flotilla status.
type memberStatus struct {
	ID           uint64 `json:"id"`
	Endpoint     string `json:"endpoint"`
	Reachable    bool   `json:"reachable"`
	Error        string `json:"error,omitempty"`
	Role         string `json:"role,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	Leader       uint64 `json:"leader,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	Keys         uint64 `json:"keys,omitempty"`
	StateHash    string `json:"state_hash,omitempty"`
	Version      string `json:"version,omitempty"`
}

type clusterStatus struct {
	ClusterID uint64         `json:"cluster_id,omitempty"`
	Leader    uint64         `json:"leader"`
	Members   []memberStatus `json:"members"`
}

func newStatusCmd() *cobra.Command {
	var co clientOpts
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's members, their roles, terms and log positions",
		Long: `Asks every member for its status and prints one line per member: ID,
client address, role, term, the leader it follows, commit and applied
index, and key count. The member list comes from the members that answer,
so one reachable endpoint is enough. Exits with status 1 when no member
answers.`,
		Example: "  flotilla status\n  flotilla status --json --endpoints 127.0.0.1:7101",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			st, err := gatherStatus(ctx, c)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MEMBER\tENDPOINT\tROLE\tTERM\tLEADER\tCOMMIT\tAPPLIED\tKEYS")
			for _, m := range st.Members {
				if !m.Reachable {
					fmt.Fprintf(w, "%d\t%s\tunreachable: %s\t\t\t\t\t\n", m.ID, m.Endpoint, m.Error)
					continue
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", m.ID, m.Endpoint, m.Role, m.Term, m.Leader, m.CommitIndex, m.AppliedIndex, m.Keys)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	co.registerOn(cmd)
	return cmd
}

// gatherStatus asks the given endpoints, then every member they list.
func gatherStatus(ctx context.Context, c *kvclient.Client) (clusterStatus, error) {
	var mu sync.Mutex
	byEndpoint := map[string]memberStatus{}
	ask := func(eps []string) {
		var wg sync.WaitGroup
		for _, ep := range eps {
			mu.Lock()
			_, done := byEndpoint[ep]
			if !done {
				byEndpoint[ep] = memberStatus{Endpoint: ep}
			}
			mu.Unlock()
			if done {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.Status(ctx, ep)
				m := memberStatus{Endpoint: ep}
				if err != nil {
					m.Error = clientError(err).Error()
				} else {
					m = memberStatus{ID: r.MemberId, Endpoint: ep, Reachable: true, Role: r.Role, Term: r.Term,
						Leader: r.Leader, CommitIndex: r.CommitIndex, AppliedIndex: r.AppliedIndex, Keys: r.Keys,
						StateHash: fmt.Sprintf("%016x", r.StateHash), Version: r.Version}
				}
				mu.Lock()
				byEndpoint[ep] = m
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	ask(c.Endpoints())
	// Learn the member list from a member that answered.
	var st clusterStatus
	ids := map[string]uint64{}
	for _, ep := range c.Endpoints() {
		if !byEndpoint[ep].Reachable {
			continue
		}
		r, err := c.Status(ctx, ep)
		if err != nil {
			continue
		}
		st.ClusterID = r.ClusterId
		var more []string
		for _, m := range r.Members {
			ids[m.ClientAddr] = m.Id
			more = append(more, m.ClientAddr)
		}
		ask(more)
		break
	}
	for ep, m := range byEndpoint {
		if m.ID == 0 {
			m.ID = ids[ep]
		}
		st.Members = append(st.Members, m)
	}
	sort.Slice(st.Members, func(i, j int) bool {
		a, b := st.Members[i], st.Members[j]
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Endpoint < b.Endpoint
	})
	reachable := 0
	for _, m := range st.Members {
		if m.Reachable {
			reachable++
			if m.Role == "leader" {
				st.Leader = m.ID
			}
		}
	}
	if reachable == 0 {
		return st, fmt.Errorf("no member answered: %s", st.Members[0].Error)
	}
	return st, nil
}
