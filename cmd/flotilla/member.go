package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
)

func newMemberCmd() *cobra.Command {
	var co clientOpts
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the members: ID, role, peer and client address",
		Example: "  flotilla member list\n  flotilla member list --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			ms, leader, err := c.MemberList(ctx)
			if err != nil {
				return clientError(err)
			}
			return printMembers(cmd, ms, leader, asJSON)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	co.registerOn(list)

	add := newMemberAddCmd(&co, false)
	addLearner := newMemberAddCmd(&co, true)
	promote := memberIDCmd(&co, "promote ID", "Make a learner a voter",
		"  flotilla member promote 4", func(ctx context.Context, c *kvclient.Client, id uint64) ([]kvclient.Member, error) {
			return c.MemberPromote(ctx, id)
		})
	remove := memberIDCmd(&co, "remove ID", "Remove a member (the removed member's server stops)",
		"  flotilla member remove 3", func(ctx context.Context, c *kvclient.Client, id uint64) ([]kvclient.Member, error) {
			return c.MemberRemove(ctx, id)
		})
	return newGroup("member", "List and change the members of a KV cluster",
		`  flotilla member list
  flotilla member add-learner 4 --peer 127.0.0.1:7004 --client 127.0.0.1:7104
  flotilla member promote 4
  flotilla member remove 1`, list, add, addLearner, promote, remove)
}

func newMemberAddCmd(co *clientOpts, learner bool) *cobra.Command {
	var peer, client string
	use, short := "add ID", "Add a voter (start its server with kv serve --join)"
	if learner {
		use, short = "add-learner ID", "Add a learner: it receives the log but does not vote until promoted"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

Give the new member's peer and client addresses. Start the new member with
flotilla kv serve --join (listing the current members and itself) before or
right after adding it; it catches up from the leader. Adding a learner first
and promoting it once caught up keeps the quorum safe while it copies the log.`,
		Example: "  flotilla member " + use[:len(use)-3] + " 4 --peer 127.0.0.1:7004 --client 127.0.0.1:7104",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseMemberID(args[0])
			if err != nil {
				return err
			}
			for _, a := range []struct{ flag, v string }{{"--peer", peer}, {"--client", client}} {
				if a.v == "" {
					return usageError{fmt.Errorf("%s is required", a.flag)}
				}
				if err := checkHostPort(a.v); err != nil {
					return usageError{fmt.Errorf("%s: %w", a.flag, err)}
				}
			}
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			ms, err := c.MemberAdd(ctx, kvclient.Member{ID: id, PeerAddr: peer, ClientAddr: client, Learner: learner})
			if err != nil {
				return clientError(err)
			}
			return printMembers(cmd, ms, 0, false)
		},
	}
	cmd.Flags().StringVar(&peer, "peer", "", "the new member's peer (Raft) address, host:port")
	cmd.Flags().StringVar(&client, "client", "", "the new member's client address, host:port")
	co.registerOn(cmd)
	return cmd
}

func memberIDCmd(co *clientOpts, use, short, example string, do func(context.Context, *kvclient.Client, uint64) ([]kvclient.Member, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use: use, Short: short, Example: example, Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseMemberID(args[0])
			if err != nil {
				return err
			}
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			ms, err := do(ctx, c, id)
			if err != nil {
				return clientError(err)
			}
			return printMembers(cmd, ms, 0, false)
		},
	}
	co.registerOn(cmd)
	return cmd
}

func parseMemberID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usageError{fmt.Errorf("member ID %q: want a positive integer", s)}
	}
	return id, nil
}

func printMembers(cmd *cobra.Command, ms []kvclient.Member, leader uint64, asJSON bool) error {
	if asJSON {
		type member struct {
			ID         uint64 `json:"id"`
			Role       string `json:"role"`
			PeerAddr   string `json:"peer_addr"`
			ClientAddr string `json:"client_addr"`
		}
		out := struct {
			Leader  uint64   `json:"leader,omitempty"`
			Members []member `json:"members"`
		}{Leader: leader, Members: []member{}}
		for _, m := range ms {
			out.Members = append(out.Members, member{m.ID, memberRole(m, leader), m.PeerAddr, m.ClientAddr})
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tROLE\tPEER\tCLIENT")
	for _, m := range ms {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", m.ID, memberRole(m, leader), m.PeerAddr, m.ClientAddr)
	}
	return w.Flush()
}

func memberRole(m kvclient.Member, leader uint64) string {
	switch {
	case m.Learner:
		return "learner"
	case m.ID == leader:
		return "voter (leader)"
	}
	return "voter"
}

func newLeaderCmd() *cobra.Command {
	var co clientOpts
	var to uint64
	transfer := &cobra.Command{
		Use:   "transfer [--to ID]",
		Short: "Hand leadership to another voter without an election timeout",
		Long: `Asks the leader to hand its role to voter --to (default: the most
up-to-date voter) and waits until that voter leads (Raft dissertation §3.10).
Use it before restarting the leader's machine.`,
		Example: "  flotilla leader transfer --to 2\n  flotilla leader transfer",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, done, err := co.client(cmd)
			if err != nil {
				return err
			}
			defer done()
			leader, err := c.LeaderTransfer(ctx, to)
			if err != nil {
				return clientError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "member %d leads\n", leader)
			return nil
		},
	}
	transfer.Flags().Uint64Var(&to, "to", 0, "the voter to hand leadership to (default: the most up-to-date one)")
	co.registerOn(transfer)
	return newGroup("leader", "Manage the leadership of a KV cluster", "  flotilla leader transfer --to 2", transfer)
}
