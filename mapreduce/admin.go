package mapreduce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler returns the coordinator's admin endpoint: /status (the
// job's Status as JSON), /metrics (Prometheus: task counts by kind and
// state, failed, re-run and backup attempts, live workers) and
// /debug/pprof/, on a private mux.
func (c *Coordinator) AdminHandler() (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collector{c},
	} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("mapreduce: registering metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(c.Progress())
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "flotilla mapreduce coordinator\n\n/metrics        Prometheus metrics\n/status         job progress as JSON\n/debug/pprof/   Go profiler\n")
	})
	return mux, nil
}

var (
	descTasks   = prometheus.NewDesc("flotilla_mr_tasks", "Tasks by kind and state.", []string{"kind", "state"}, nil)
	descFailed  = prometheus.NewDesc("flotilla_mr_failed_attempts_total", "Attempts that failed with an app error.", nil, nil)
	descRerun   = prometheus.NewDesc("flotilla_mr_reruns_total", "Tasks made idle again after a lost worker or map output.", nil, nil)
	descBackups = prometheus.NewDesc("flotilla_mr_backup_attempts_total", "Backup attempts of stragglers.", nil, nil)
	descWorkers = prometheus.NewDesc("flotilla_mr_workers", "Live workers.", nil, nil)
)

// collector exports a coordinator's Progress.
type collector struct{ c *Coordinator }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTasks, descFailed, descRerun, descBackups, descWorkers} {
		ch <- d
	}
}

func (col collector) Collect(ch chan<- prometheus.Metric) {
	st := col.c.Progress()
	for kind, n := range map[string]Counts{"map": st.Maps, "reduce": st.Reduces} {
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n.Idle), kind, "idle")
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n.Running), kind, "in_progress")
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n.Done), kind, "completed")
	}
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(st.Failed))
	ch <- prometheus.MustNewConstMetric(descRerun, prometheus.CounterValue, float64(st.Rerun))
	ch <- prometheus.MustNewConstMetric(descBackups, prometheus.CounterValue, float64(st.Backups))
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(st.Workers))
}
