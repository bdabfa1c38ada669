package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/node"
)

// badCase is one run of the binary with input it must handle.
type badCase struct {
	name       string
	args       []string
	stdin      []byte
	wantCode   int
	wantStderr []string      // substrings stderr must contain
	within     time.Duration // the run must finish this fast; 0: 15 s
	check      func(t *testing.T, r result)
}

// TestBadInput runs the real binary with bad flags, unreachable members,
// oversize keys and values, bad configs and data directories, and checks
// exit statuses and that each error says what was wrong.
func TestBadInput(t *testing.T) {
	c := newCluster(t, 1, 1)
	c.waitLeader(20 * time.Second)
	ep := c.members[0].client
	dir := t.TempDir()

	closed, err := node.FreeAddrs(1) // nothing listens there once it returns
	if err != nil {
		t.Fatal(err)
	}
	regular := filepath.Join(dir, "regular-file")
	if err := os.WriteFile(regular, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spare := spareConfig(t, dir, "spare.yaml", "")
	typo := spareConfig(t, dir, "typo.yaml", "snapshot-entires: 100\n")
	key4096, key5000 := strings.Repeat("k", 4096), strings.Repeat("k", 5000)
	mib := bytes.Repeat([]byte("v"), 1<<20)
	cl := c.client() // created here: subtests must not call c's methods

	cases := []badCase{
		{name: "unknown flag", args: []string{"kv", "get", "k", "--bogus-flag"},
			wantCode: 2, wantStderr: []string{"--bogus-flag"}},
		{name: "unknown command", args: []string{"kv", "frobnicate"},
			wantCode: 2, wantStderr: []string{"frobnicate"}},
		{name: "no endpoints anywhere", args: []string{"kv", "get", "k", "--data-dir", filepath.Join(dir, "no-such-up")},
			wantCode: 2, wantStderr: []string{"no endpoints"}},
		{name: "closed port", args: []string{"kv", "get", "k", "--endpoints", closed[0], "--timeout", "2s"},
			wantCode: 1, wantStderr: []string{closed[0], "connection refused"}, within: 6 * time.Second},
		{name: "key over the limit", args: []string{"kv", "put", key5000, "v", "--endpoints", ep},
			wantCode: 1, wantStderr: []string{"4096"}},
		{name: "key at the limit", args: []string{"kv", "put", key4096, "v", "--endpoints", ep},
			wantCode: 0},
		// valueArg reports an oversize value as a usage error (status 2).
		{name: "value over the limit on stdin", args: []string{"kv", "put", "big", "--endpoints", ep},
			stdin: append(bytes.Clone(mib), 'x'), wantCode: 2, wantStderr: []string{"1048576"}},
		{name: "value at the limit on stdin", args: []string{"kv", "put", "big", "--endpoints", ep},
			stdin: mib, wantCode: 0, check: func(t *testing.T, _ result) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				e, found, err := cl.Get(ctx, []byte("big"))
				if err != nil || !found || !bytes.Equal(e.Value, mib) {
					t.Errorf("after putting 1 MiB from stdin, Get(big) = %d bytes, found %v, err %v; want the 1048576 bytes", len(e.Value), found, err)
				}
			}},
		{name: "data dir under a regular file", args: []string{"kv", "serve", "--config", spare, "--id", "1", "--data-dir", filepath.Join(regular, "data")},
			wantCode: 1, wantStderr: []string{regular, "not a directory"}},
		{name: "data dir of a running member", args: []string{"kv", "serve", "--config", spare, "--id", "1", "--cluster-id", "1", "--data-dir", c.members[0].dataDir},
			wantCode: 1, wantStderr: []string{"already running"}},
		{name: "config with an unknown field", args: []string{"kv", "serve", "--config", typo, "--id", "1", "--data-dir", filepath.Join(dir, "typo-data")},
			wantCode: 1, wantStderr: []string{"snapshot-entires"}},
		{name: "up with no nodes", args: []string{"up", "--nodes", "0", "--data-dir", filepath.Join(dir, "up0")},
			wantCode: 2, wantStderr: []string{"--nodes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			within := tc.within
			if within == 0 {
				within = 15 * time.Second
			}
			o := runOpts{timeout: within + 10*time.Second}
			if tc.stdin != nil {
				o.stdin = bytes.NewReader(tc.stdin)
			}
			r := runFlotilla(t, o, tc.args...)
			if r.code != tc.wantCode {
				t.Fatalf("want exit status %d, got:\n%s", tc.wantCode, r)
			}
			for _, s := range tc.wantStderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, r)
				}
			}
			if r.elapsed > within {
				t.Errorf("took %v, want at most %v:\n%s", r.elapsed.Round(time.Millisecond), within, r)
			}
			t.Logf("exit %d after %v; stderr: %s", r.code, r.elapsed.Round(time.Millisecond), quoteArgs([]string{strings.TrimSpace(r.stderr)}))
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}

	// Not a subtest: it drives c, whose methods fail c's test.
	testOtherCluster(t, c)
}

// testOtherCluster writes a key to c's only member, stops it, starts it on
// the same data directory as a member of another cluster (which must
// refuse), and then checks that the original member still has the key.
func testOtherCluster(t *testing.T, c *cluster) {
	m := c.members[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.client().Put(ctx, []byte("before"), []byte("intact")); err != nil {
		t.Fatalf("put before the switch: %v", err)
	}
	c.stop(m)

	args := append(c.serveArgs(m), "--cluster-id", "2")
	r := runFlotilla(t, runOpts{timeout: 20 * time.Second}, args...)
	if r.code != 1 {
		t.Fatalf("serving cluster 2 from cluster 1's data directory: want exit status 1, got:\n%s", r)
	}
	t.Logf("serving cluster 2 from cluster 1's data directory: exit %d; stderr: %s", r.code, strings.TrimSpace(r.stderr))
	for _, s := range []string{"another cluster", m.dataDir} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("serving cluster 2 from cluster 1's data directory: stderr does not mention %q:\n%s", s, r)
		}
	}

	c.start(m)
	c.waitLeader(20 * time.Second)
	e, found, err := c.client().Get(ctx, []byte("before"))
	if err != nil || !found || string(e.Value) != "intact" {
		t.Fatalf("after the refused start, Get(before) = %q, found %v, err %v; want %q", e.Value, found, err, "intact")
	}
}

// spareConfig writes a valid 1-member config with fresh ports plus extra
// YAML lines, and returns its path.
func spareConfig(t *testing.T, dir, name, extra string) string {
	t.Helper()
	addrs, err := node.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	cfg := fmt.Sprintf("cluster-id: 9\nmembers:\n  - {id: 1, peer: %s, client: %s}\n%s", addrs[0], addrs[1], extra)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
