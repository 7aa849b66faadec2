package tui

import (
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/loop-dev/loop/daemon/api"
)

// table is the resource list: selection, scrolling and a cache of rendered
// rows (a row is re-rendered only when its text or selection changes).
type table struct {
	sel    int
	offset int
	cache  map[string]string
}

func (t *table) move(delta, n int) {
	t.sel += delta
	if t.sel >= n {
		t.sel = n - 1
	}
	if t.sel < 0 {
		t.sel = 0
	}
}

type column struct {
	title string
	width int
	drop  int // columns with a higher drop go first when the terminal is narrow (0: never)
}

// cells renders a resource's row as plain text cells (no styling).
func cells(r *resource, frame int, now time.Time) []string {
	st := r.status
	phase, _ := styles{}.phaseCell(st.Phase, frame)
	if st.PendingFiles > 0 && st.Phase != api.PhaseUpdating {
		phase += " +" + itoa(st.PendingFiles)
	}
	if len(st.Drift) > 0 {
		// Live objects differ from what was applied (OutOfSync).
		phase += " ≠" + itoa(len(st.Drift))
	}
	upd, age := "—", "—"
	if u := st.LastUpdate; u != nil {
		switch {
		case u.Error != "":
			upd = string(u.Kind) + " ✗"
		case endedChain(st) != nil:
			// The save's time to here, across the resources it went through.
			upd = "chain " + fmtDur(st.Chain.Total())
		case !u.Ready.IsZero():
			upd = string(u.Kind) + " " + fmtDur(u.Total())
		default:
			upd = string(u.Kind) + " …"
		}
		at := u.Ready
		if at.IsZero() {
			at = u.Started
		}
		if !at.IsZero() {
			age = fmtAge(now.Sub(at))
		}
	}
	pct := "—"
	if p50, p95, ok := r.percentiles(); ok {
		pct = fmtDur(p50) + "/" + fmtDur(p95)
	}
	kind := st.Type
	if kind == "" {
		kind = "—"
	}
	return []string{st.Name, kind, phase, upd, pct, age}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// view renders at most height lines (header included) of the table.
func (t *table) view(s *state, sty styles, width, height, frame int, now time.Time) string {
	if t.cache == nil || len(t.cache) > 4*len(s.order)+64 {
		t.cache = map[string]string{}
	}
	cols := []column{{"NAME", 4, 0}, {"KIND", 4, 2}, {"STATUS", 6, 0}, {"UPDATE", 6, 0}, {"P50/P95", 7, 3}, {"AGE", 3, 1}}
	rows := make([][]string, len(s.order))
	for i, name := range s.order {
		rows[i] = cells(s.res[name], frame, now)
		for c, v := range rows[i] {
			if w := ansi.StringWidth(v); w > cols[c].width {
				cols[c].width = w
			}
		}
	}
	if cols[0].width > 32 {
		cols[0].width = 32
	}
	// Drop low-priority columns until the row fits.
	show := make([]bool, len(cols))
	total := 2
	for i, c := range cols {
		show[i] = true
		total += c.width + 2
	}
	for drop := 3; drop >= 1 && total > width; drop-- {
		for i, c := range cols {
			if c.drop == drop && show[i] {
				show[i] = false
				total -= c.width + 2
			}
		}
	}
	line := func(vals []string) string {
		var b strings.Builder
		for i, v := range vals {
			if !show[i] {
				continue
			}
			b.WriteString(v)
			if pad := cols[i].width - ansi.StringWidth(v); pad > 0 {
				b.WriteString(strings.Repeat(" ", pad))
			}
			b.WriteString("  ")
		}
		return ansi.Truncate(strings.TrimRight(b.String(), " "), width-2, "…")
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	out := []string{sty.dim.Render("  " + line(titles))}
	visible := height - 1
	if visible < 1 {
		visible = 1
	}
	if t.sel < t.offset {
		t.offset = t.sel
	}
	if t.sel >= t.offset+visible {
		t.offset = t.sel - visible + 1
	}
	if t.offset > len(rows)-visible && len(rows) >= visible {
		t.offset = len(rows) - visible
	}
	for i := t.offset; i < len(rows) && i < t.offset+visible; i++ {
		plain := line(rows[i])
		key := plain
		if i == t.sel {
			key = "\x00" + plain
		}
		if r, ok := t.cache[key]; ok {
			out = append(out, r)
			continue
		}
		_, pst := sty.phaseCell(s.res[s.order[i]].status.Phase, frame)
		// Colour only the status cell; the rest stays plain.
		nameW := 0
		if show[0] {
			nameW += cols[0].width + 2
		}
		if show[1] {
			nameW += cols[1].width + 2
		}
		pre, rest := splitAt(plain, nameW)
		mid, post := splitAt(rest, cols[2].width)
		row := pre + pst.Render(mid) + post
		if i == t.sel {
			row = "▸ " + sty.selected.Render(pre) + pst.Render(mid) + sty.selected.Render(post)
		} else {
			row = "  " + row
		}
		t.cache[key] = row
		out = append(out, row)
	}
	return strings.Join(out, "\n")
}

// splitAt splits s after w cells.
func splitAt(s string, w int) (string, string) {
	if ansi.StringWidth(s) <= w {
		return s, ""
	}
	return ansi.Cut(s, 0, w), ansi.Cut(s, w, ansi.StringWidth(s))
}
