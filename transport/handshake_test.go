package transport

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// TestClusterMismatch connects nodes of two clusters: the acceptor refuses
// with a reason, both sides log it, the dialer records it and keeps
// retrying, and the sender is told the peer is unreachable.
func TestClusterMismatch(t *testing.T) {
	bcfg := testConfig(2)
	bcfg.ClusterID = 9
	b := start(t, bcfg)
	acfg := testConfig(1)
	acfg.ClusterID = 7
	acfg.Peers = map[uint64]string{2: b.Addr()}
	a := start(t, acfg)

	want := "transport: peer " + b.Addr() + " refused: cluster ID mismatch: the dialer is in cluster 7, this node is in cluster 9"
	waitFor(t, 5*time.Second, "the refusal in the dialer's stats", func() bool {
		return strings.HasPrefix(a.Stats().Peers[2].LastError, want)
	})
	waitFor(t, 5*time.Second, "the dialer to retry", func() bool { return a.Stats().Peers[2].DialFailures >= 3 })
	if !a.log.contains("cluster ID mismatch") {
		t.Errorf("the dialer did not log the refusal")
	}
	if a.h.unreachableCount(2) == 0 {
		t.Errorf("the refusal was not reported with ReportUnreachable")
	}

	in := b.Stats().Inbound
	if in.Refused < 3 || in.Accepted != 0 || !strings.Contains(in.LastError, "cluster ID mismatch") {
		t.Errorf("acceptor inbound stats %+v; want refusals naming the mismatch", in)
	}
	if !b.log.contains("refusing connection") || !b.log.contains("cluster ID mismatch") {
		t.Errorf("the acceptor did not log the refusal:\n%s", b.log)
	}
	a.Send([]raft.Message{heartbeat(1, 2, 1)})
	if b.h.count() != 0 {
		t.Fatal("a message crossed clusters")
	}
}

// TestWrongReceiver dials a node under the wrong ID.
func TestWrongReceiver(t *testing.T) {
	b := start(t, testConfig(2))
	acfg := testConfig(1)
	acfg.Peers = map[uint64]string{3: b.Addr()}
	a := start(t, acfg)
	want := "refused: wrong node: the dialer wants node 3, this is node 2"
	waitFor(t, 5*time.Second, "the refusal", func() bool { return strings.Contains(a.Stats().Peers[3].LastError, want) })
	if !strings.Contains(b.Stats().Inbound.LastError, "wrong node") {
		t.Errorf("acceptor's last error is %q", b.Stats().Inbound.LastError)
	}
}

// rawHandshake dials addr and sends h; it returns the connection and the
// acceptor's answer frame.
func rawHandshake(t *testing.T, addr string, h hello) (net.Conn, byte, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(h.marshal()); err != nil {
		t.Fatal(err)
	}
	fr := frameReader{r: c, max: maxErrorText}
	typ, n, err := fr.next()
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	p, err := fr.payload(n)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return c, typ, p
}

// TestAcceptorAnswers drives the acceptor's half with raw hellos.
func TestAcceptorAnswers(t *testing.T) {
	cfg := testConfig(2)
	cfg.ClusterID = 9
	b := start(t, cfg)
	good := hello{version: protocolVersion, kind: kindMessages, cluster: 9, from: 1, to: 2}
	tests := []struct {
		name string
		edit func(*hello)
		want string // the error reason; "" for an accept
	}{
		{"accepted", func(*hello) {}, ""},
		{"cluster", func(h *hello) { h.cluster = 7 }, "cluster ID mismatch: the dialer is in cluster 7, this node is in cluster 9"},
		{"receiver", func(h *hello) { h.to = 5 }, "wrong node: the dialer wants node 5, this is node 2"},
		{"version", func(h *hello) { h.version = 7 }, "unsupported protocol version 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good
			tt.edit(&h)
			c, typ, p := rawHandshake(t, b.Addr(), h)
			if tt.want == "" {
				a, err := parseAccept(p)
				if typ != frameAccept || err != nil || a.node != 2 || a.maxFrame != DefaultMaxFrameBytes || a.maxSnapshot != DefaultMaxSnapshotBytes {
					t.Fatalf("answer %s %+v, %v; want an accept from node 2 with the default limits", frameTypeName(typ), a, err)
				}
				return
			}
			if typ != frameError || !strings.Contains(string(p), tt.want) {
				t.Fatalf("answer %s %q, want an error containing %q", frameTypeName(typ), p, tt.want)
			}
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("after refusing, the acceptor left the connection open: %v", err)
			}
		})
	}
}

// TestDialerHandshakeErrors drives the dialer's half against a fake
// acceptor that answers badly.
func TestDialerHandshakeErrors(t *testing.T) {
	tests := []struct {
		name   string
		answer []byte
		want   string
	}{
		{"refused", errorFrame("go away"), "transport: peer ADDR refused: go away"},
		{"wrong node", (&acceptInfo{version: protocolVersion, node: 3, maxFrame: 4096}).frame(), "ADDR is node 3, want node 2"},
		{"wrong version", (&acceptInfo{version: 2, node: 2, maxFrame: 4096}).frame(), "protocol version 2"},
		{"tiny frames", (&acceptInfo{version: protocolVersion, node: 2, maxFrame: 16}).frame(), "limits frames to 16 bytes"},
		{"not an answer", appendFrameHeader(nil, frameMsg, 0), "answered with a message frame"},
		{"huge answer", []byte{0x7f, 0, 0, 0, frameError}, "frame too large"},
		{"silence", nil, "i/o timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if _, err := readHello(c); err == nil && tt.answer != nil {
					c.Write(tt.answer)
				}
				bufio.NewReader(c).ReadByte() // hold the connection until the dialer gives up
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			h := hello{version: protocolVersion, kind: kindMessages, cluster: 1, from: 1, to: 2}
			_, err = clientHandshake(c, ln.Addr().String(), &h, 200*time.Millisecond)
			want := strings.ReplaceAll(tt.want, "ADDR", ln.Addr().String())
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want it to contain %q", err, want)
			}
			if tt.name == "refused" && !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v does not match ErrRefused", err)
			}
			c.Close()
			<-done
		})
	}
}
