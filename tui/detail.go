package tui

import (
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/loop-dev/loop/daemon/api"
)

// tab is a detail pane tab.
type tab int

const (
	tabLogs tab = iota
	tabBuild
	tabTiming
)

var tabNames = []string{"1 Logs", "2 Build", "3 Timing"}

// detail is the pane under the table: the selected resource's logs, its
// last build's output, and its last update's phases.
type detail struct {
	tab tab
	// top is the absolute index (in lines.total terms) of the first line
	// shown when not following; follow pins the view to the newest line.
	follow bool
	top    int
	query  string // the search filter of the logs tab ("" for none)
}

func newDetail() detail { return detail{follow: true} }

// scroll moves the logs window by delta lines (negative: up).
func (d *detail) scroll(l *lines, delta, height int) {
	first := l.total - l.n // absolute index of the oldest line held
	if d.follow {
		d.top = l.total - height
	}
	d.top += delta
	if d.top < first {
		d.top = first
	}
	d.follow = d.top >= l.total-height
}

// window returns the lines to show: only the visible ones are touched.
func (d *detail) window(l *lines, height int) (shown []string, from, count int) {
	if d.query != "" {
		// Search filters: scan the held lines for matches, newest last.
		var m []string
		for i := 0; i < l.n; i++ {
			if s := l.at(i); strings.Contains(s, d.query) {
				m = append(m, s)
			}
		}
		if len(m) > height {
			return m[len(m)-height:], len(m) - height, len(m)
		}
		return m, 0, len(m)
	}
	first := l.total - l.n
	top := d.top
	if d.follow || top > l.total-height {
		top = l.total - height
	}
	if top < first {
		top = first
	}
	for i := top - first; i < l.n && len(shown) < height; i++ {
		shown = append(shown, l.at(i))
	}
	return shown, top - first, l.n
}

func (d *detail) view(r *resource, sty styles, width, height int) string {
	if height < 2 {
		return ""
	}
	var tabs []string
	for i, n := range tabNames {
		if tab(i) == d.tab {
			tabs = append(tabs, sty.tabOn.Render(n))
		} else {
			tabs = append(tabs, sty.tabOff.Render(n))
		}
	}
	name := "—"
	if r != nil {
		name = r.status.Name
	}
	bar := "── " + strings.Join(tabs, "  ") + " ── " + name + " "
	if d.tab == tabLogs && d.query != "" {
		bar += "/" + d.query + " "
	}
	if d.tab == tabLogs && !d.follow {
		bar += "(paused: G follows) "
	}
	if w := ansi.StringWidth(bar); w < width {
		bar += strings.Repeat("─", width-w)
	}
	out := []string{ansi.Truncate(bar, width, "")}
	body := height - 1
	if r == nil {
		out = append(out, sty.dim.Render("no resources yet"))
		return strings.Join(out, "\n")
	}
	switch d.tab {
	case tabLogs:
		shown, _, _ := d.window(r.logs, body)
		if len(shown) == 0 {
			msg := "no output yet"
			if d.query != "" {
				msg = "no line matches /" + d.query
			}
			shown = []string{sty.dim.Render(msg)}
		}
		out = append(out, clip(shown, width)...)
	case tabBuild:
		b := detail{follow: true}
		shown, _, _ := b.window(r.build, body)
		if len(shown) == 0 {
			shown = []string{sty.dim.Render("no build output for the last update")}
		}
		out = append(out, clip(shown, width)...)
	case tabTiming:
		out = append(out, timing(r, sty, width)...)
	}
	if len(out) > height {
		out = out[:height]
	}
	return strings.Join(out, "\n")
}

// clip makes each line one terminal row: tabs expanded, cut at width.
func clip(ls []string, width int) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		l = strings.ReplaceAll(strings.TrimRight(l, "\r"), "\t", "    ")
		out[i] = ansi.Truncate(l, width, "…")
	}
	return out
}

// timing renders the last update's phases as bars; when the last update
// ended a chain across resources, the chain's instead.
func timing(r *resource, sty styles, width int) []string {
	u := r.status.LastUpdate
	if u == nil {
		return []string{sty.dim.Render("no update yet")}
	}
	if c := endedChain(r.status); c != nil {
		return append(chainTiming(c, sty, width), trailer(r, u, sty, width)...)
	}
	head := string(u.Kind)
	switch {
	case u.Error != "":
		head += " · failed"
	case u.Ready.IsZero():
		head += " · in progress"
	default:
		head += " · " + fmtDur(u.Total()) + " change-to-result"
	}
	switch {
	case u.Files == 1:
		head += " · 1 file"
	case u.Files > 1:
		head += fmt.Sprintf(" · %d files", u.Files)
	}
	if p50, p95, ok := r.percentiles(); ok {
		head += fmt.Sprintf(" · p50 %s p95 %s (n=%d)", fmtDur(p50), fmtDur(p95), len(r.totals))
	}
	out := []string{ansi.Truncate(head, width, "…")}
	if u.Error != "" {
		out = append(out, sty.bad.Render(ansi.Truncate("✗ "+u.Error, width, "…")))
	}
	// The breakdown adds up to the change-to-result time (batch, queue,
	// each phase, other); an update that never became ready has only spans.
	spans := api.Breakdown(*u)
	if spans == nil {
		spans = u.Spans
	}
	var max int64
	nameW := 4
	for _, sp := range spans {
		if int64(sp.Duration) > max {
			max = int64(sp.Duration)
		}
		if len(sp.Name) > nameW {
			nameW = len(sp.Name)
		}
	}
	barW := width - nameW - 12
	if barW < 4 {
		barW = 4
	}
	if barW > 50 {
		barW = 50
	}
	for _, sp := range spans {
		n := 1
		if max > 0 {
			n = int(int64(barW) * int64(sp.Duration) / max)
		}
		if n < 1 {
			n = 1
		}
		out = append(out, fmt.Sprintf("%-*s %s%s %s", nameW, sp.Name, sty.ok.Render(strings.Repeat("█", n)), strings.Repeat(" ", barW-n), fmtDur(sp.Duration)))
	}
	if len(spans) == 0 {
		out = append(out, sty.dim.Render("no phases recorded"))
	}
	return append(out, trailer(r, u, sty, width)...)
}

// trailer is what the timing tab shows under the bars: a later error,
// drift, links.
func trailer(r *resource, u *api.Update, sty styles, width int) []string {
	var out []string
	if r.status.Phase == api.PhaseError && r.status.Error != "" && r.status.Error != u.Error {
		out = append(out, sty.bad.Render(ansi.Truncate("✗ "+r.status.Error, width, "…")))
	}
	for _, key := range r.status.Drift {
		out = append(out, sty.warn.Render(ansi.Truncate("≠ out of sync: "+key, width, "…")))
	}
	for _, l := range r.status.Links {
		s := "↗ " + l.URL
		if l.Name != "" {
			s += "  " + l.Name
		}
		out = append(out, ansi.Truncate(s, width, "…"))
	}
	return out
}

// endedChain returns the chain across resources that the resource's last
// update ended, if any (a chain of one update is that update).
func endedChain(st api.ResourceStatus) *api.Chain {
	c := st.Chain
	if c == nil || st.LastUpdate == nil || c.EndUpdate != st.LastUpdate.ID || len(c.Links) < 2 || c.Total() <= 0 {
		return nil
	}
	return c
}

// chainTiming renders a chain as one bar chart across resources: a row per
// phase of its critical path (save → compile → handoff → sync → restart →
// ready), each bar placed at its offset from the save.
func chainTiming(c *api.Chain, sty styles, width int) []string {
	total := c.Total()
	root := string(c.Cause)
	if c.Path != "" {
		root += " " + c.Path
	}
	var res []string
	for _, l := range c.Links {
		if !slices.Contains(res, l.Resource) {
			res = append(res, l.Resource)
		}
	}
	head := fmt.Sprintf("chain · %s → %s · %s to ready", root, strings.Join(res, " → "), fmtDur(total))
	out := []string{ansi.Truncate(head, width, "…")}
	labelW := 4
	for _, p := range c.Phases {
		labelW = max(labelW, len(p.Resource)+1+len(p.Name))
	}
	barW := min(max(width-labelW-12, 4), 50)
	for _, p := range c.Phases {
		from := int(int64(barW) * int64(p.Start) / int64(total))
		n := max(int(int64(barW)*int64(p.Duration)/int64(total)), 1)
		from = min(from, barW-n)
		label := p.Resource + " " + string(p.Name)
		bar := strings.Repeat(" ", from) + sty.ok.Render(strings.Repeat("█", n)) + strings.Repeat(" ", barW-from-n)
		out = append(out, fmt.Sprintf("%-*s %s %s", labelW, label, bar, fmtDur(p.Duration)))
	}
	return out
}
