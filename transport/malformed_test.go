package transport

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// readUntilClosed reads from c until the peer closes it and returns what it
// read; it fails the test if that takes longer than timeout.
func readUntilClosed(t *testing.T, c net.Conn, timeout time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("the server did not close the connection: %v", err)
	}
	return b
}

// TestMalformedClients attacks one transport with broken clients and checks
// that each is cut off while its real peer keeps talking to it.
func TestMalformedClients(t *testing.T) {
	nodes := cluster(t, 2, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	a, b := nodes[0], nodes[1]
	seq := uint64(0)
	stillServes := func(t *testing.T) {
		t.Helper()
		seq++
		a.Send([]raft.Message{heartbeat(1, 2, seq)})
		waitFor(t, 5*time.Second, "the real peer's message", func() bool { return b.h.count() == int(seq) })
	}
	stillServes(t)

	validHello := hello{version: protocolVersion, kind: kindMessages, cluster: 1, from: 1, to: 2}
	msgFrame := func(m raft.Message) []byte {
		f, err := messageFrame(&m, DefaultMaxFrameBytes)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tests := []struct {
		name  string
		hello *hello // sent (and its accept read) before send; nil for none
		send  []byte
		// wantErr is what the server's error frame must say, if it sends one.
		wantErr string
		// counter names the Inbound counter that must grow.
		counter string
	}{
		{name: "garbage", send: []byte("GET / HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n"), wantErr: "bad magic", counter: "refused"},
		{name: "short garbage", send: []byte("\x00\x01\x02"), counter: "refused"},
		{name: "slowloris", send: validHello.marshal()[:10], counter: "refused"},
		{name: "huge length prefix", hello: &validHello, send: []byte{0xff, 0xff, 0xff, 0xff, frameMsg}, wantErr: "frame too large", counter: "protocol"},
		{name: "truncated frame", hello: &validHello, send: append(appendFrameHeader(nil, frameMsg, 100), make([]byte, 10)...), counter: "protocol"},
		{name: "bad encoding", hello: &validHello, send: append(appendFrameHeader(nil, frameMsg, 2), 0, 0), wantErr: "malformed", counter: "protocol"},
		{name: "wrong frame type", hello: &validHello, send: appendFrameHeader(nil, frameSnapChunk, 0), wantErr: "snapshot chunk frame on a message connection", counter: "protocol"},
		{name: "spoofed sender", hello: &validHello, send: msgFrame(heartbeat(3, 2, 1)), wantErr: "message 3->2 on a connection from node 1", counter: "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Stats().Inbound
			var c net.Conn
			if tt.hello != nil {
				var typ byte
				c, typ, _ = rawHandshake(t, b.Addr(), *tt.hello)
				if typ != frameAccept {
					t.Fatalf("handshake answered with %s", frameTypeName(typ))
				}
			} else {
				var err error
				if c, err = net.Dial("tcp", b.Addr()); err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			stillServes(t) // while the broken client is still connected
			if tt.name == "truncated frame" || tt.name == "short garbage" {
				c.(*net.TCPConn).CloseWrite()
			}
			got := readUntilClosed(t, c, 5*time.Second)
			if tt.wantErr != "" && !strings.Contains(string(got), tt.wantErr) {
				t.Errorf("the server answered %q, want an error frame containing %q", got, tt.wantErr)
			}
			waitFor(t, 5*time.Second, "the failure to be counted", func() bool {
				in := b.Stats().Inbound
				if tt.counter == "refused" {
					return in.Refused > before.Refused
				}
				return in.ProtocolErrors > before.ProtocolErrors
			})
			stillServes(t)
		})
	}
	if a.Stats().Total.Dropped != 0 {
		t.Errorf("the real peer dropped messages: %+v", a.Stats().Total)
	}
}

// TestInboundLimit fills the inbound connection slots with idle clients:
// the extra one is closed at once, and the slots free up when the idle
// clients hit the handshake timeout.
func TestInboundLimit(t *testing.T) {
	cfg := testConfig(2)
	cfg.MaxInbound = 3
	cfg.HandshakeTimeout = 300 * time.Millisecond
	b := start(t, cfg)
	var idle []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitFor(t, 5*time.Second, "three open connections", func() bool { return b.Stats().Inbound.Open == 3 })
	extra, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	readUntilClosed(t, extra, 5*time.Second)
	if !strings.Contains(b.Stats().Inbound.LastError, "too many inbound connections") {
		t.Errorf("last inbound error %q", b.Stats().Inbound.LastError)
	}
	for _, c := range idle {
		readUntilClosed(t, c, 5*time.Second)
	}
	acfg := testConfig(1)
	acfg.Peers = map[uint64]string{2: b.Addr()}
	a := start(t, acfg)
	a.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, 5*time.Second, "a real peer's message after the flood", func() bool { return b.h.count() == 1 })
}
