package dsort

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// PartName is the name of node i's output in a Cluster's output directory.
func PartName(i int) string { return fmt.Sprintf("part-%05d", i) }

// Cluster runs n nodes in this process, peer to peer over loopback TCP on
// free ports: node i reads the i-th of n near-equal record ranges of
// input and writes outDir/PartName(i). partition is PartitionBits or
// PartitionSample. It returns each node's stats and output path; on
// failure no part is left. Progress lines come from node 0 only.
func Cluster(ctx context.Context, n int, input, outDir, partition string, opt NodeOptions) ([]NodeStats, []string, error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("%w: a cluster needs at least one node, got %d", ErrConfig, n)
	}
	fi, err := os.Stat(input)
	if err != nil {
		return nil, nil, fmt.Errorf("dsort: %w", err)
	}
	if err := checkSize(input, fi.Size()); err != nil {
		return nil, nil, err
	}
	cfg := Config{Partition: partition}
	lns := make([]net.Listener, n)
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			for _, l := range lns[:i] {
				l.Close()
			}
			return nil, nil, fmt.Errorf("dsort: listen: %w", err)
		}
		cfg.Servers = append(cfg.Servers, Server{ID: i, Host: "127.0.0.1", Port: lns[i].Addr().(*net.TCPAddr).Port})
	}
	recs := fi.Size() / RecordSize
	stats := make([]NodeStats, n)
	outs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		o := opt
		o.Listener = lns[i]
		if i != 0 {
			o.Progress = nil
		}
		in := Input{Path: input, Offset: int64(i) * recs / int64(n) * RecordSize}
		in.Length = int64(i+1)*recs/int64(n)*RecordSize - in.Offset
		outs[i] = filepath.Join(outDir, PartName(i))
		wg.Go(func() { stats[i], errs[i] = Run(ctx, cfg, i, in, outs[i], o) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, p := range outs {
			os.Remove(p)
		}
		return stats, nil, err
	}
	return stats, outs, nil
}
