package metrics

import (
	"path"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// RootPattern is the group a chain's root falls in: the root path's
// directory and extension ("cmd/api/*.go", "*.go" at the top, "web/*" for
// a file without one), "(load)" or "(trigger)" for those causes.
func RootPattern(c api.Chain) string {
	switch {
	case c.Cause == api.CauseLoad:
		return "(load)"
	case c.Cause == api.CauseTrigger:
		return "(trigger)"
	case c.Path == "":
		return "(save)"
	}
	dir, ext := path.Dir(path.Clean(c.Path)), path.Ext(c.Path)
	if dir == "." {
		return "*" + ext
	}
	return dir + "/*" + ext
}

// SummarizeChains groups chains whose root is at or after since (zero:
// all): per root pattern and end resource, per root pattern, per end
// resource, then all; within each level sorted by root, then end.
func SummarizeChains(chains []api.Chain, since time.Time) []api.ChainStats {
	groups := map[pair][]api.Chain{}
	var all []api.Chain
	for _, c := range chains {
		if !since.IsZero() && c.Root.Before(since) {
			continue
		}
		all = append(all, c)
		root := RootPattern(c)
		for _, k := range []pair{{root, c.End}, {root, ""}, {"", c.End}} {
			groups[k] = append(groups[k], c)
		}
	}
	if len(all) == 0 {
		return nil
	}
	keys := sortedPairs(groups)
	out := make([]api.ChainStats, 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, chainStats(k.a, k.b, groups[k]))
	}
	return append(out, chainStats("", "", all))
}

// chainStats computes one group's statistics; chains that never became
// ready count as errors.
func chainStats(root, end string, chains []api.Chain) api.ChainStats {
	g := api.ChainStats{Root: root, End: end}
	var totals []time.Duration
	errs := 0
	type pk struct {
		res  string
		name api.SpanName
	}
	phases := map[pk]time.Duration{}
	var order []pk
	for _, c := range chains {
		total := c.Total()
		if total <= 0 || c.Error != "" {
			errs++
			continue
		}
		totals = append(totals, total)
		for _, p := range c.Phases {
			k := pk{p.Resource, p.Name}
			if _, ok := phases[k]; !ok {
				order = append(order, k)
			}
			phases[k] += p.Duration
		}
	}
	g.Latency = latency(totals, errs)
	if g.Count == 0 {
		return g
	}
	n := time.Duration(g.Count)
	var at time.Duration
	for _, k := range order {
		d := phases[k] / n
		g.Phases = append(g.Phases, api.ChainPhase{Resource: k.res, Name: k.name, Start: at, Duration: d})
		at += d
	}
	if len(g.Phases) > 0 {
		// The rounding of the means goes to the last phase: they add up to Mean.
		g.Phases[len(g.Phases)-1].Duration += g.Mean - at
	}
	return g
}
