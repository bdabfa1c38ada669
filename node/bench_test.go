package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPropose3Nodes measures proposals through a 3-node cluster in one
// process over loopback TCP with fsync on: the same path as
// `flotilla bench raft`. Each op is one 256-byte proposal, committed and
// applied on the leader.
func BenchmarkPropose3Nodes(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c, err := StartLocalCluster(3, b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			l, err := c.Leader(ctx)
			if err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 256)
			var left atomic.Int64
			left.Store(int64(b.N))
			b.SetBytes(256)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						if _, err := l.Propose(ctx, value); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
