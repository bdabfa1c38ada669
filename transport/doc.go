// Package transport carries raft.Message values between the nodes of a
// cluster over TCP, with its own framing and a compact binary encoding.
//
// Each node runs one Transport. It listens for peers and keeps one
// long-lived outgoing connection to every peer it knows:
//
//	tr, err := transport.New(transport.Config{
//		ClusterID: 1, NodeID: 1, Listen: "127.0.0.1:7001",
//		Peers: map[uint64]string{2: "127.0.0.1:7002", 3: "127.0.0.1:7003"},
//	}, handler)
//	...
//	tr.Send(rd.Messages) // never blocks
//	...
//	tr.Close()
//
// Send encodes each message and queues it for its destination; a writer
// goroutine per peer drains the queue into a buffered connection, flushing
// when the queue is empty, so that a burst of messages costs a few write
// syscalls and nothing waits for replies. A full queue drops the message,
// counts it and reports the peer unreachable: Raft retransmits what is lost.
// Accepted connections are read by a goroutine each, which hands messages to
// Handler.Receive in the order the peer sent them.
//
// A MsgSnap goes through a separate connection per snapshot, its data cut
// into frame-sized chunks and reassembled by the receiver, so that a large
// snapshot neither exceeds the frame limit nor holds up heartbeats.
//
// Every connection opens with a handshake naming the cluster, the sender
// and the intended receiver; the acceptor refuses a mismatch with a reason
// that the dialer records in Stats. Lost connections are redialed with
// exponential backoff and jitter. Every length read from the wire is checked
// against a limit before anything is allocated.
//
// docs/transport.md describes the wire format and the policies in full.
package transport
