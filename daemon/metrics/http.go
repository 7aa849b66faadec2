package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loop-dev/loop/daemon/api"
)

// Handler serves GET /v1/metrics: an api.Metrics as JSON. Query
// parameters: since=D (a Go duration: history of the last D only) and
// recent=1 (include the traces kept in memory).
func (s *Store) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		now := time.Now()
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				http.Error(w, fmt.Sprintf("since=%q: want a positive duration such as 1h", v), http.StatusBadRequest)
				return
			}
			since = now.Add(-d)
		}
		hist, err := s.History(since)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		m := api.Metrics{Time: now, Window: s.Window(), History: hist}
		if r.URL.Query().Get("recent") == "1" {
			m.Recent = s.Recent()
			m.RecentChains = s.RecentChains()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m)
	})
}

// PrometheusHandler serves the Store's histograms in the Prometheus
// exposition format (for /metrics on the loopback listener).
func (s *Store) PrometheusHandler() http.Handler {
	return promhttp.HandlerFor(s.prom.reg, promhttp.HandlerOpts{})
}

// Buckets of the histograms, in seconds: from a live update's few
// milliseconds to a slow rebuild's minutes.
var buckets = []float64{0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}

// promMetrics are the Prometheus collectors of one Store, in its own
// registry (a daemon serves one project; tests open many Stores).
type promMetrics struct {
	reg    *prometheus.Registry
	total  *prometheus.HistogramVec
	phase  *prometheus.HistogramVec
	failed *prometheus.CounterVec
	chain  *prometheus.HistogramVec
	chainP *prometheus.HistogramVec
}

func newPromMetrics() *promMetrics {
	p := &promMetrics{
		reg: prometheus.NewRegistry(),
		total: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "loop", Name: "change_to_result_seconds",
			Help:    "Time from the first file event of a change (or the start, for an init) until the resource was ready.",
			Buckets: buckets,
		}, []string{"resource", "kind"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "loop", Name: "update_phase_seconds",
			Help:    "Time per phase of an update (batch, queue, build, deploy, sync, run, restart, cmd, other); phases add up to the change-to-result time.",
			Buckets: buckets,
		}, []string{"resource", "kind", "phase"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "loop", Name: "updates_failed_total",
			Help: "Updates that failed.",
		}, []string{"resource", "kind"}),
	}
	p.chain = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "loop", Name: "chain_seconds",
		Help:    "Time from the root change of a chain (a save, trigger or load) until the last resource it caused was ready, by root path pattern and end resource.",
		Buckets: buckets,
	}, []string{"root", "end"})
	p.chainP = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "loop", Name: "chain_phase_seconds",
		Help:    "Time per resource and phase of a chain's critical path (batch, cmd, handoff, sync, restart, other, ...); phases add up to the chain's time.",
		Buckets: buckets,
	}, []string{"root", "end", "resource", "phase"})
	p.reg.MustRegister(p.total, p.phase, p.failed, p.chain, p.chainP)
	return p
}

func (p *promMetrics) observe(t api.Trace) {
	kind := string(t.Kind)
	total := t.Total()
	if t.Error != "" || total <= 0 {
		p.failed.WithLabelValues(t.Resource, kind).Inc()
		return
	}
	p.total.WithLabelValues(t.Resource, kind).Observe(total.Seconds())
	for _, s := range api.Breakdown(t.Update) {
		if s.Duration >= 0 {
			p.phase.WithLabelValues(t.Resource, kind, string(s.Name)).Observe(s.Duration.Seconds())
		}
	}
}

func (p *promMetrics) observeChain(c api.Chain) {
	total := c.Total()
	if c.Error != "" || total <= 0 {
		return
	}
	root := RootPattern(c)
	p.chain.WithLabelValues(root, c.End).Observe(total.Seconds())
	for _, ph := range c.Phases {
		if ph.Duration >= 0 {
			p.chainP.WithLabelValues(root, c.End, ph.Resource, string(ph.Name)).Observe(ph.Duration.Seconds())
		}
	}
}
