package transport

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
)

// counter is a Handler that counts received messages and wakes a waiter
// every 64 messages and at the target count.
type counter struct {
	n      atomic.Int64
	target atomic.Int64
	wake   chan struct{} // capacity 1
}

func (c *counter) Receive(raft.Message) {
	if n := c.n.Add(1); n%64 == 0 || n == c.target.Load() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}
func (c *counter) ReportUnreachable(uint64)    {}
func (c *counter) ReportSnapshot(uint64, bool) {}

// BenchmarkMsgApp measures one-way throughput of MsgApp messages carrying
// 256-byte entries from one transport to another over loopback. The sender
// keeps at most a window of messages in flight so that the queue never
// overflows; everything else is pipelined. It reports messages per second
// and, through SetBytes, MB/s of entry payload.
func BenchmarkMsgApp(b *testing.B) {
	for _, entries := range []int{1, 4, 32} {
		b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) { benchMsgApp(b, entries) })
	}
}

func benchMsgApp(b *testing.B, entries int) {
	const entrySize, window, batch = 256, 2048, 64
	recv := &counter{wake: make(chan struct{}, 1)}
	quiet := slog.New(slog.DiscardHandler)
	cfgB := testConfig(2)
	cfgB.Logger = quiet
	tb, err := New(cfgB, recv)
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	cfgA := testConfig(1)
	cfgA.Logger = quiet
	cfgA.Peers = map[uint64]string{2: tb.Addr()}
	ta, err := New(cfgA, &counter{wake: make(chan struct{}, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer ta.Close()

	data := make([]byte, entrySize)
	msgs := make([]raft.Message, batch)
	for i := range msgs {
		es := make([]raft.Entry, entries)
		for j := range es {
			es[j] = raft.Entry{Term: 3, Index: uint64(i*entries + j + 1), Type: raft.EntryNormal, Data: data}
		}
		msgs[i] = raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 3, LogTerm: 3, Index: uint64(i * entries), Commit: uint64(i * entries), Entries: es}
	}
	recv.target.Store(int64(b.N))
	b.SetBytes(int64(entries * entrySize))
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		for sent-int(recv.n.Load()) > window-batch {
			<-recv.wake
		}
		n := min(batch, b.N-sent)
		ta.Send(msgs[:n])
		sent += n
	}
	for int(recv.n.Load()) < b.N {
		<-recv.wake
		if d := ta.Stats().Total.Dropped; d > 0 {
			b.Fatalf("%d messages dropped", d)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
