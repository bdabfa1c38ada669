package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/raft"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const proposals = 3

// leader starts a one-node cluster, waits for it to lead, proposes
// `proposals` commands and returns the node. The cluster stops when the
// test ends.
func leader(t *testing.T) *node.Node {
	t.Helper()
	c, err := node.StartLocalCluster(1, t.TempDir(), func(cfg *node.Config) { cfg.NoSync = true })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range proposals {
		if _, err := n.Propose(ctx, fmt.Appendf(nil, "cmd-%d", i)); err != nil {
			t.Fatalf("Propose %d: %v", i, err)
		}
	}
	return n
}

// server serves Handler(cfg) for the test's duration.
func server(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	h, err := Handler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// do sends a method request to url and returns the response with its body read.
func do(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestMetrics(t *testing.T) {
	srv := server(t, Config{Node: leader(t)})
	resp, body := do(t, "GET", srv.URL+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	for _, line := range []string{
		fmt.Sprintf("flotilla_raft_proposals_total %d", proposals),
		"flotilla_raft_is_leader 1",
		"flotilla_raft_leader_id 1",
		"flotilla_raft_node_id 1",
		`flotilla_raft_role{role="leader"} 1`,
		`flotilla_raft_role{role="follower"} 0`,
		"flotilla_raft_voters 1",
	} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("/metrics lacks line %q", line)
		}
	}
	for _, name := range []string{
		"flotilla_raft_applied_entries_total", "flotilla_raft_elections_total",
		"flotilla_raft_leader_changes_total", "flotilla_raft_term", "flotilla_raft_commit_index", "flotilla_raft_applied_index",
	} {
		if v := scalar(t, families, name); v < 1 {
			t.Errorf("%s = %v, want >= 1", name, v)
		}
	}
	if v := scalar(t, families, "flotilla_raft_applied_index"); v < proposals {
		t.Errorf("flotilla_raft_applied_index = %v, want >= %d", v, proposals)
	}
	for _, name := range []string{
		"flotilla_raft_snapshots_total", "flotilla_raft_bad_messages_total", "flotilla_raft_recv_dropped_total",
		"flotilla_transport_messages_sent_total", "flotilla_transport_bytes_received_total",
		"flotilla_transport_messages_dropped_total", "flotilla_transport_inbound_connections",
		"go_goroutines",
	} {
		if families[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, name := range []string{"flotilla_wal_write_seconds", "flotilla_wal_fsync_seconds", "flotilla_apply_seconds", "flotilla_proposal_seconds"} {
		checkHistogram(t, families, name)
	}
	// Every proposal was applied, so each has a latency observation.
	if c := families["flotilla_proposal_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); c != proposals {
		t.Errorf("flotilla_proposal_seconds_count = %d, want %d", c, proposals)
	}
	for name, f := range families {
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}
}

// TestCollectorLint gathers the node collector through a pedantic
// registry, which checks Collect against Describe, and lints the result.
func TestCollectorLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newCollector(DefaultNamespace, leader(t))); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// scalar returns the value of the unlabelled counter or gauge name.
func scalar(t *testing.T, families map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := families[name]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Fatalf("/metrics: want one %s, got %v", name, f)
	}
	m := f.GetMetric()[0]
	if f.GetType() == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// checkHistogram checks that histogram name has every bound of
// node.HistogramBounds, cumulative counts, and a +Inf bucket equal to the
// count.
func checkHistogram(t *testing.T, families map[string]*dto.MetricFamily, name string) {
	t.Helper()
	f := families[name]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) != 1 {
		t.Fatalf("/metrics: want one histogram %s, got %v", name, f)
	}
	h := f.GetMetric()[0].GetHistogram()
	b := h.GetBucket()
	if len(b) != len(node.HistogramBounds)+1 {
		t.Fatalf("%s has %d buckets, want %d and +Inf", name, len(b), len(node.HistogramBounds))
	}
	var prev uint64
	for i, bk := range b {
		want := math.Inf(1)
		if i < len(node.HistogramBounds) {
			want = node.HistogramBounds[i].Seconds()
		}
		if bk.GetUpperBound() != want {
			t.Errorf("%s bucket %d: le=%v, want %v", name, i, bk.GetUpperBound(), want)
		}
		if bk.GetCumulativeCount() < prev {
			t.Errorf("%s bucket %d: count %d below the previous %d", name, i, bk.GetCumulativeCount(), prev)
		}
		prev = bk.GetCumulativeCount()
	}
	if prev != h.GetSampleCount() {
		t.Errorf("%s: +Inf bucket %d, count %d", name, prev, h.GetSampleCount())
	}
}

// TestMetricsInfBucket checks the raw exposition: the +Inf bucket of each
// histogram equals its _count.
func TestMetricsInfBucket(t *testing.T) {
	srv := server(t, Config{Node: leader(t), Namespace: "fl"})
	_, body := do(t, "GET", srv.URL+"/metrics")
	for _, name := range []string{"fl_wal_write_seconds", "fl_wal_fsync_seconds", "fl_apply_seconds", "fl_proposal_seconds"} {
		inf := value(t, body, name+`_bucket{le="+Inf"}`)
		if count := value(t, body, name+"_count"); inf != count {
			t.Errorf("%s: +Inf bucket %s, count %s", name, inf, count)
		}
	}
	if strings.Contains(body, "flotilla_") {
		t.Error("namespace fl: /metrics still has flotilla_ names")
	}
}

// value returns the value on the exposition line for series.
func value(t *testing.T, body, series string) string {
	t.Helper()
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("/metrics lacks %s", series)
	return ""
}

// TestMetricsPeers checks the per-peer series of a leader of three nodes.
func TestMetricsPeers(t *testing.T) {
	c, err := node.StartLocalCluster(3, t.TempDir(), func(cfg *node.Config) { cfg.NoSync = true })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Propose(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	srv := server(t, Config{Node: n})
	id := n.Status().ID
	var followers []string
	for i := range uint64(3) {
		if i+1 != id {
			followers = append(followers, fmt.Sprint(i+1))
		}
	}
	// Heartbeats reach both followers soon; poll until the counters say so.
	var families map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		_, body := do(t, "GET", srv.URL+"/metrics")
		parser := expfmt.NewTextParser(model.LegacyValidation)
		if families, err = parser.TextToMetricFamilies(strings.NewReader(body)); err != nil {
			t.Fatalf("parsing /metrics: %v", err)
		}
		if peerValue(families, "flotilla_transport_peer_messages_sent_total", followers[0]) > 0 &&
			peerValue(families, "flotilla_transport_peer_messages_sent_total", followers[1]) > 0 &&
			peerValue(families, "flotilla_transport_peer_messages_received_total", followers[0]) > 0 &&
			peerValue(families, "flotilla_transport_peer_messages_received_total", followers[1]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no traffic with followers %v in /metrics:\n%s", followers, body)
		}
		<-tick.C
	}
	for _, p := range followers {
		for _, name := range []string{
			"flotilla_transport_peer_bytes_sent_total", "flotilla_transport_peer_bytes_received_total",
			"flotilla_transport_peer_connected", "flotilla_raft_peer_match_index",
		} {
			if v := peerValue(families, name, p); v < 1 {
				t.Errorf("%s{peer=%q} = %v, want >= 1", name, p, v)
			}
		}
	}
	if v := scalar(t, families, "flotilla_transport_messages_sent_total"); v < 2 {
		t.Errorf("flotilla_transport_messages_sent_total = %v, want >= 2", v)
	}
	if v := scalar(t, families, "flotilla_raft_voters"); v != 3 {
		t.Errorf("flotilla_raft_voters = %v, want 3", v)
	}
}

// peerValue returns the value of name's series for peer, or -1.
func peerValue(families map[string]*dto.MetricFamily, name, peer string) float64 {
	for _, m := range families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "peer" && l.GetValue() == peer {
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestStatus(t *testing.T) {
	type service struct {
		Keys int `json:"keys"`
	}
	srv := server(t, Config{Node: leader(t), Status: func() any { return service{Keys: 7} }})
	resp, body := do(t, "GET", srv.URL+"/status")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /status: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var s struct {
		Status
		Service service `json:"service"`
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("decoding /status: %v\n%s", err, body)
	}
	if s.ID != 1 || s.Role != "leader" || s.Leader != 1 || s.Term == 0 || s.Stopped {
		t.Errorf("status: id %d role %q leader %d term %d stopped %v; want 1, leader, 1, >0, false\n%s",
			s.ID, s.Role, s.Leader, s.Term, s.Stopped, body)
	}
	if s.AppliedIndex < proposals || s.CommitIndex < s.AppliedIndex {
		t.Errorf("status: commit %d applied %d, want applied >= %d and commit >= applied", s.CommitIndex, s.AppliedIndex, proposals)
	}
	if len(s.Progress) != 1 || s.Progress[0].ID != 1 || s.Progress[0].Match < proposals {
		t.Errorf("status: progress %+v, want node 1 matched at >= %d", s.Progress, proposals)
	}
	if s.Metrics.Proposals != proposals || s.Metrics.Proposal.Count != proposals || s.Metrics.Proposal.P99Seconds <= 0 {
		t.Errorf("status: metrics %+v, want %d proposals observed", s.Metrics, proposals)
	}
	if s.Service.Keys != 7 {
		t.Errorf("status: service %+v, want keys 7", s.Service)
	}
	if !strings.Contains(body, `"commit_index"`) || !strings.Contains(body, `"applied_index"`) {
		t.Errorf("status lacks snake_case index fields:\n%s", body)
	}
}

func TestStatusOfStoppedNode(t *testing.T) {
	n := leader(t)
	srv := server(t, Config{Node: n})
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	_, body := do(t, "GET", srv.URL+"/status")
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("decoding /status: %v\n%s", err, body)
	}
	if !s.Stopped || s.AppliedIndex < proposals {
		t.Errorf("stopped node: stopped %v applied %d, want true and >= %d", s.Stopped, s.AppliedIndex, proposals)
	}
	if resp, _ := do(t, "GET", srv.URL+"/metrics"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics of a stopped node: %s", resp.Status)
	}
}

func TestRoutes(t *testing.T) {
	srv := server(t, Config{Node: leader(t)})
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
		contains     string
	}{
		{"GET", "/", 200, "", "/debug/pprof/"},
		{"GET", "/debug/pprof/", 200, "", "goroutine"},
		{"GET", "/debug/pprof", 200, "", "goroutine"}, // redirected
		{"GET", "/debug/pprof/goroutine?debug=1", 200, "", "goroutine profile"},
		{"GET", "/debug/pprof/cmdline", 200, "", ""},
		{"HEAD", "/metrics", 200, "", ""},
		{"HEAD", "/status", 200, "", ""},
		{"POST", "/metrics", 405, "GET, HEAD", ""},
		{"PUT", "/status", 405, "GET, HEAD", ""},
		{"DELETE", "/", 405, "GET, HEAD", ""},
		{"GET", "/nope", 404, "", ""},
		{"GET", "/metrics/x", 404, "", ""},
	} {
		resp, body := do(t, tc.method, srv.URL+tc.path)
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.code)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s: body lacks %q:\n%s", tc.method, tc.path, tc.contains, body)
		}
	}
}

func TestHandlerConfig(t *testing.T) {
	if _, err := Handler(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Handler without a Node: %v, want ErrInvalidConfig", err)
	}
	n := leader(t)
	for _, ns := range []string{"9lives", "my-ns", "a b", "ü"} {
		if _, err := Handler(Config{Node: n, Namespace: ns}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Handler with Namespace %q: %v, want ErrInvalidConfig", ns, err)
		}
	}
	// Two handlers for one node register nothing globally, so both work.
	for range 2 {
		if _, err := Handler(Config{Node: n, Namespace: "ok_ns1"}); err != nil {
			t.Errorf("Handler: %v", err)
		}
	}
}

func TestServe(t *testing.T) {
	h, err := Handler(Config{Node: leader(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, h) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + ln.Addr().String() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /status: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(ShutdownTimeout + 5*time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := client.Get("http://" + ln.Addr().String() + "/status"); err == nil {
		t.Error("GET after shutdown succeeded")
	}
}

func TestServeListenerError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := Serve(context.Background(), ln, http.NotFoundHandler()); err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve on a closed listener: %v, want an accept error", err)
	}
}

// TestRoleNames pins the role strings /status and the role label use.
func TestRoleNames(t *testing.T) {
	var got []string
	for _, r := range roles {
		got = append(got, r.String())
	}
	if want := "follower pre-candidate candidate leader"; strings.Join(got, " ") != want {
		t.Errorf("roles %q, want %q", got, want)
	}
	if raft.RoleLeader.String() != "leader" {
		t.Error("raft.RoleLeader is not \"leader\"")
	}
}
