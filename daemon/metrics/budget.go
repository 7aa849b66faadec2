package metrics

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// Limit is one latency budget: the p-th percentile of the change-to-result
// time of the selected updates must not exceed Max.
type Limit struct {
	// Resource and Kind select updates; empty selects all. With Chain the
	// limit judges chains instead, those that ended at Resource (all when
	// empty).
	Resource   string
	Kind       api.UpdateKind
	Chain      bool
	Percentile float64
	Max        time.Duration
	// Name is how the limit was written, without the value ("live.p50").
	Name string
}

// Budget is a set of limits, as given to `loop ci --latency-budget`.
type Budget []Limit

var kinds = []api.UpdateKind{api.UpdateInit, api.UpdateLive, api.UpdateRebuild, api.UpdateLocal}

// ErrBudget is wrapped by every ParseBudget error.
var ErrBudget = errors.New("latency budget")

// ParseBudget parses a comma-separated budget spec. Each item is
// [SELECTOR.]pNN=DURATION where SELECTOR is an update kind (init, live,
// rebuild, local), a resource name, or RESOURCE.KIND, or "chain" (every
// chain: a save to the last resource it caused being ready) or
// chain.RESOURCE (the chains that ended at RESOURCE); pNN is a percentile
// in (0, 100] (p50, p95, p99.9) or max. A bare DURATION means p95=DURATION.
// Examples: "2s", "p95=2s,live.p50=50ms", "web.live.p99=100ms",
// "chain.hello.p50=1.2s".
func ParseBudget(spec string) (Budget, error) {
	var b Budget
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		l, err := parseLimit(item)
		if err != nil {
			return nil, err
		}
		b = append(b, l)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w %q: empty; want e.g. p95=2s,live.p50=50ms", ErrBudget, spec)
	}
	return b, nil
}

func parseLimit(item string) (Limit, error) {
	bad := func(format string, args ...any) (Limit, error) {
		return Limit{}, fmt.Errorf("%w %q: %s", ErrBudget, item, fmt.Sprintf(format, args...))
	}
	sel, val, ok := strings.Cut(item, "=")
	if !ok {
		sel, val = "p95", item
	}
	sel, val = strings.TrimSpace(sel), strings.TrimSpace(val)
	d, err := time.ParseDuration(val)
	if err != nil {
		return bad("%q is not a duration (want e.g. 50ms or 2s)", val)
	}
	if d <= 0 {
		return bad("the budget must be positive")
	}
	l := Limit{Max: d, Name: sel}
	m := selectorRE.FindStringSubmatch(sel)
	if m == nil {
		return bad("%q does not end in a percentile (want p50, p95, p99 or max, after an optional kind or resource and a dot)", sel)
	}
	rest := m[1]
	p, err := parsePercentile(m[2])
	if err != nil {
		return bad("%v", err)
	}
	l.Percentile = p
	if rest == "" {
		return l, nil
	}
	if rest == chainSelector {
		l.Chain = true
		return l, nil
	}
	if res, ok := strings.CutPrefix(rest, chainSelector+"."); ok {
		l.Chain, l.Resource = true, res
		return l, nil
	}
	if k := api.UpdateKind(rest); slices.Contains(kinds, k) {
		l.Kind = k
		return l, nil
	}
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		if k := api.UpdateKind(rest[i+1:]); slices.Contains(kinds, k) {
			l.Resource, l.Kind = rest[:i], k
			return l, nil
		}
	}
	l.Resource = rest
	return l, nil
}

// chainSelector starts a selector of chains: a resource named "chain" is
// judged by its update kinds (chain.live.p95) or its chains (chain.chain.p95).
const chainSelector = "chain"

// selectorRE splits "[SELECTOR.]pNN": the percentile may itself hold a dot.
var selectorRE = regexp.MustCompile(`^(?:(.+)\.)?(p[0-9]+(?:\.[0-9]+)?|max)$`)

func parsePercentile(s string) (float64, error) {
	if s == "max" {
		return 100, nil
	}
	num, ok := strings.CutPrefix(s, "p")
	if !ok {
		return 0, fmt.Errorf("%q is not a percentile (want p50, p95, p99 or max)", s)
	}
	p, err := strconv.ParseFloat(num, 64)
	if err != nil || p <= 0 || p > 100 {
		return 0, fmt.Errorf("%q is not a percentile (want p50, p95, p99 or max)", s)
	}
	return p, nil
}

// Result is a limit checked against the updates of a run.
type Result struct {
	Limit
	// Count is the number of selected updates that became ready; Got their
	// percentile (0 when Count is 0).
	Count int
	Got   time.Duration
}

// Exceeded reports whether the updates went over the limit. A limit with
// no updates to judge is not exceeded.
func (r Result) Exceeded() bool { return r.Count > 0 && r.Got > r.Max }

func (r Result) String() string {
	got := r.Got.Round(10 * time.Microsecond)
	if r.Got >= time.Second {
		got = r.Got.Round(time.Millisecond)
	}
	what := "updates"
	if r.Chain {
		what = "chains"
	}
	switch {
	case r.Count == 0:
		return fmt.Sprintf("%s ≤ %s: no %s to judge", r.Name, r.Max, what)
	case r.Exceeded():
		return fmt.Sprintf("%s = %s exceeds the budget of %s (%d %s)", r.Name, got, r.Max, r.Count, what)
	default:
		return fmt.Sprintf("%s = %s within %s (%d %s)", r.Name, got, r.Max, r.Count, what)
	}
}

// Check evaluates every limit over traces and chains (failed updates and
// chains are left out: they fail a run on their own).
func (b Budget) Check(traces []api.Trace, chains []api.Chain) []Result {
	out := make([]Result, 0, len(b))
	for _, l := range b {
		var totals []time.Duration
		for _, c := range chains {
			if !l.Chain || (l.Resource != "" && c.End != l.Resource) {
				continue
			}
			if d := c.Total(); d > 0 && c.Error == "" {
				totals = append(totals, d)
			}
		}
		for _, t := range traces {
			if l.Chain {
				break
			}
			if (l.Resource != "" && t.Resource != l.Resource) || (l.Kind != "" && t.Kind != l.Kind) {
				continue
			}
			if d := t.Total(); d > 0 && t.Error == "" {
				totals = append(totals, d)
			}
		}
		slices.Sort(totals)
		out = append(out, Result{Limit: l, Count: len(totals), Got: Percentile(totals, l.Percentile)})
	}
	return out
}

// Exceeded returns the results over their limit.
func Exceeded(results []Result) []Result {
	var out []Result
	for _, r := range results {
		if r.Exceeded() {
			out = append(out, r)
		}
	}
	return out
}
