// Package admin is the admin HTTP endpoint every flotilla server exposes on
// its admin port: Prometheus metrics, a JSON status document and the Go
// profiler, all read from one node.Node at request time.
//
// Handler serves:
//
//	/               a plain-text index of the endpoints below
//	/metrics        Prometheus text exposition (GET, HEAD)
//	/status         a JSON Status document (GET, HEAD)
//	/debug/pprof/   net/http/pprof's index, profiles, cmdline, symbol and trace
//
// Other paths answer 404; /metrics, /status and / answer other methods with
// 405 and an Allow header. The handlers are registered on a private mux,
// never on http.DefaultServeMux.
//
// # Metrics
//
// The metrics come from a private prometheus.Registry holding the standard
// Go runtime (go_*) and process (process_*) collectors and a collector that
// reads the node when scraped; nothing runs between scrapes. Names below use
// the default namespace "flotilla" (Config.Namespace replaces it). Durations
// are in seconds; histogram buckets are node.HistogramBounds.
//
// Node counters, from node.Metrics:
//
//	flotilla_raft_proposals_total         proposals the core accepted as leader on this node
//	flotilla_raft_applied_entries_total   index of the last entry applied to the state machine;
//	                                      it only grows, so rate() is entries applied per second
//	flotilla_raft_elections_total         times this node became leader
//	flotilla_raft_leader_changes_total    times the leader known to this node changed (to none included)
//	flotilla_raft_snapshots_total         snapshots this node took of its state machine
//	flotilla_raft_bad_messages_total      peer messages the core rejected as malformed
//	flotilla_raft_recv_dropped_total      peer messages dropped because the node's inbox was full
//
// Raft state gauges, from node.Node.Status:
//
//	flotilla_raft_node_id                 this node's ID
//	flotilla_raft_term                    current term
//	flotilla_raft_commit_index            highest log index known committed
//	flotilla_raft_applied_index           highest log index the core knows applied
//	flotilla_raft_first_index             first log index held in memory
//	flotilla_raft_last_index              last log index
//	flotilla_raft_snapshot_index          index of the latest snapshot
//	flotilla_raft_voters                  number of voting members
//	flotilla_raft_is_leader               1 if this node is leader, else 0
//	flotilla_raft_leader_id               ID of the known leader, 0 if none
//	flotilla_raft_role{role}              1 for the node's role, 0 for the others
//	                                      (follower, pre-candidate, candidate, leader)
//	flotilla_raft_peer_match_index{peer}  on the leader: highest index known replicated on peer
//	flotilla_raft_peer_next_index{peer}   on the leader: next index to send to peer
//	flotilla_raft_peer_inflight{peer}     on the leader: appends sent to peer and not yet acknowledged
//	flotilla_raft_peer_recent_active{peer} on the leader: 1 if peer was heard from recently
//
// Latency histograms, from node.Metrics:
//
//	flotilla_wal_write_seconds            WAL writes, fsync included
//	flotilla_wal_fsync_seconds            WAL fsyncs alone
//	flotilla_apply_seconds                state machine Apply calls (one per batch)
//	flotilla_proposal_seconds             proposals, from Propose to applied on this node
//
// Transport counters, from transport.Transport.Stats, per peer node ID (the
// peer label) and summed over all peers (the totals also count messages
// dropped for unknown destinations):
//
//	flotilla_transport_peer_messages_sent_total{peer}     flotilla_transport_messages_sent_total
//	flotilla_transport_peer_bytes_sent_total{peer}        flotilla_transport_bytes_sent_total
//	flotilla_transport_peer_messages_received_total{peer} flotilla_transport_messages_received_total
//	flotilla_transport_peer_bytes_received_total{peer}    flotilla_transport_bytes_received_total
//	flotilla_transport_peer_messages_dropped_total{peer}  flotilla_transport_messages_dropped_total
//	flotilla_transport_peer_reconnects_total{peer}        flotilla_transport_reconnects_total
//	flotilla_transport_peer_dial_failures_total{peer}     flotilla_transport_dial_failures_total
//	flotilla_transport_peer_snapshots_sent_total{peer}    flotilla_transport_snapshots_sent_total
//	flotilla_transport_peer_snapshots_failed_total{peer}  flotilla_transport_snapshots_failed_total
//	flotilla_transport_peer_snapshots_received_total{peer} flotilla_transport_snapshots_received_total
//	flotilla_transport_peer_connected{peer}               gauge: 1 if the outgoing connection is up
//
// Bytes count whole frames, headers included. Inbound connections:
//
//	flotilla_transport_inbound_accepted_total         connections that completed the handshake
//	flotilla_transport_inbound_refused_total          connections refused during the handshake
//	flotilla_transport_inbound_protocol_errors_total  connections closed for malformed frames
//	flotilla_transport_inbound_connections            gauge: inbound connections open now
//
// docs/admin.md describes the same endpoints and metrics for operators.
package admin
