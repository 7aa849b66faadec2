package metrics

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted durations: the smallest value with at least p % of the values at
// or below it. It is always one of the values; 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(n))) - 1
	return sorted[max(0, min(i, n-1))]
}

// phaseOrder is the order phases are listed in; unknown span names come
// after these, by name, and other is always last.
var phaseOrder = []api.SpanName{api.PhaseBatch, api.PhaseQueue, api.SpanBuild, "load", api.SpanPush, api.SpanDeploy, api.SpanSync, api.SpanRun, api.SpanRestart, api.SpanCmd, "ready"}

func phaseRank(name api.SpanName) int {
	if i := slices.Index(phaseOrder, name); i >= 0 {
		return i
	}
	if name == api.PhaseOther {
		return len(phaseOrder) + 1
	}
	return len(phaseOrder)
}

// stats computes one group's statistics. Traces that failed or never
// became ready count as errors and stay out of the percentiles.
func stats(resource string, kind api.UpdateKind, traces []api.Trace) api.LatencyStats {
	g := api.LatencyStats{Resource: resource, Kind: kind}
	var totals []time.Duration
	errs := 0
	phases := map[api.SpanName]time.Duration{}
	for _, t := range traces {
		total := t.Total()
		if total <= 0 || t.Error != "" {
			errs++
			continue
		}
		totals = append(totals, total)
		for _, s := range api.Breakdown(t.Update) {
			phases[s.Name] += s.Duration
		}
	}
	g.Latency = latency(totals, errs)
	if g.Count == 0 {
		return g
	}
	n := time.Duration(g.Count)
	// Mean per phase; other takes the rounding so the phases add up to Mean.
	var listed time.Duration
	for name, d := range phases {
		if name == api.PhaseOther {
			continue
		}
		g.Phases = append(g.Phases, api.Span{Name: name, Duration: d / n})
		listed += d / n
	}
	g.Phases = append(g.Phases, api.Span{Name: api.PhaseOther, Duration: g.Mean - listed})
	sort.SliceStable(g.Phases, func(i, j int) bool {
		ri, rj := phaseRank(g.Phases[i].Name), phaseRank(g.Phases[j].Name)
		if ri != rj {
			return ri < rj
		}
		return g.Phases[i].Name < g.Phases[j].Name
	})
	return g
}

// latency computes the percentiles of totals (sorted in place).
func latency(totals []time.Duration, errs int) api.Latency {
	l := api.Latency{Count: len(totals), Errors: errs}
	if l.Count == 0 {
		return l
	}
	slices.Sort(totals)
	var sum time.Duration
	for _, d := range totals {
		sum += d
	}
	l.P50, l.P90 = Percentile(totals, 50), Percentile(totals, 90)
	l.P95, l.P99 = Percentile(totals, 95), Percentile(totals, 99)
	l.Max = totals[len(totals)-1]
	l.Mean = sum / time.Duration(l.Count)
	return l
}

// pair is a group's key: two names, empty meaning "every".
type pair struct{ a, b string }

// sortedPairs lists the keys of groups: both names set first, then only
// the first, then the rest; by name within each level.
func sortedPairs[T any](groups map[pair][]T) []pair {
	keys := make([]pair, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	level := func(k pair) int {
		switch {
		case k.a != "" && k.b != "":
			return 0
		case k.a != "":
			return 1
		default:
			return 2
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		x, y := keys[i], keys[j]
		if lx, ly := level(x), level(y); lx != ly {
			return lx < ly
		}
		if x.a != y.a {
			return x.a < y.a
		}
		return x.b < y.b
	})
	return keys
}

// Summarize groups traces started at or after since (zero: all) and
// computes their statistics: one group per resource and kind, then per
// resource over every kind, then per kind over every resource, then one
// over everything. Groups within each level are sorted by name.
func Summarize(traces []api.Trace, since time.Time) api.MetricsSummary {
	groups := map[pair][]api.Trace{}
	var all []api.Trace
	for _, t := range traces {
		if !since.IsZero() && t.Started.Before(since) {
			continue
		}
		all = append(all, t)
		kind := string(t.Kind)
		for _, k := range []pair{{t.Resource, kind}, {t.Resource, ""}, {"", kind}} {
			groups[k] = append(groups[k], t)
		}
	}
	sum := api.MetricsSummary{Since: since, Traces: len(all)}
	if len(all) == 0 {
		return sum
	}
	for _, k := range sortedPairs(groups) {
		sum.Groups = append(sum.Groups, stats(k.a, api.UpdateKind(k.b), groups[k]))
	}
	sum.Groups = append(sum.Groups, stats("", "", all))
	return sum
}
