//go:build ignore

// Command hcbench measures hashicorp/raft with raft-wal the way
// `flotilla bench raft` measures flotilla: N nodes in one process over
// loopback TCP, fsync on, C concurrent proposers on the leader.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
)

type countFSM struct{ n atomic.Uint64 }

func (f *countFSM) Apply(*raft.Log) any                 { return f.n.Add(1) }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return snap(f.n.Load()), nil }
func (f *countFSM) Restore(r io.ReadCloser) error       { return r.Close() }

type snap uint64

func (s snap) Persist(sink raft.SnapshotSink) error {
	_, err := fmt.Fprint(sink, uint64(s))
	sink.Close()
	return err
}
func (snap) Release() {}

func main() {
	nodes := flag.Int("nodes", 3, "cluster size")
	clients := flag.Int("clients", 64, "concurrent proposers")
	size := flag.Int("value-size", 256, "bytes per command")
	dur := flag.Duration("duration", 10*time.Second, "measured time")
	warm := flag.Duration("warmup", time.Second, "unmeasured load first")
	flag.Parse()
	dir, err := os.MkdirTemp("", "hcbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var addrs []string
	var ls []net.Listener
	for range *nodes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	var servers []raft.Server
	for i, a := range addrs {
		servers = append(servers, raft.Server{ID: raft.ServerID(fmt.Sprint(i + 1)), Address: raft.ServerAddress(a)})
	}
	var rafts []*raft.Raft
	for i, a := range addrs {
		d := filepath.Join(dir, fmt.Sprint(i+1))
		os.MkdirAll(d, 0o755)
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		conf.Logger = hclog.NewNullLogger()
		w, err := raftwal.Open(d)
		if err != nil {
			log.Fatal(err)
		}
		snaps, err := raft.NewFileSnapshotStore(d, 1, io.Discard)
		if err != nil {
			log.Fatal(err)
		}
		tr, err := raft.NewTCPTransport(a, nil, 10, 10*time.Second, io.Discard)
		if err != nil {
			log.Fatal(err)
		}
		r, err := raft.NewRaft(conf, &countFSM{}, w, w, snaps, tr)
		if err != nil {
			log.Fatal(err)
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			log.Fatal(err)
		}
		rafts = append(rafts, r)
	}
	var leader *raft.Raft
	for deadline := time.Now().Add(20 * time.Second); leader == nil; {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
			}
		}
		if time.Now().After(deadline) {
			log.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	value := make([]byte, *size)
	run := func(d time.Duration) (int, int) {
		var ok, bad atomic.Int64
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		for range *clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					if err := leader.Apply(value, 5*time.Second).Error(); err != nil {
						bad.Add(1)
						continue
					}
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		return int(ok.Load()), int(bad.Load())
	}
	run(*warm)
	start := time.Now()
	n, bad := run(*dur)
	el := time.Since(start)
	fmt.Printf("hashicorp/raft nodes %d clients %d value %d: %d proposals (%d errors) in %.1fs\n", *nodes, *clients, *size, n, bad, el.Seconds())
	fmt.Printf("throughput     %.0f proposals/s\n", float64(n)/el.Seconds())
	for _, r := range rafts {
		r.Shutdown().Error()
	}
}
