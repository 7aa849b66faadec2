package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// headless prints daemon events as lines: `resource │ text`, the names
// right-aligned as tilt's stream prints them (scripts grep `name │ text`). It remembers the
// last phase per resource so a status line is printed only on a change.
type headless struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	phase map[string]api.Phase
	chain map[string]time.Time // per resource, the root of the last chain printed
}

func newHeadless(w io.Writer) *headless {
	return &headless{w: w, width: 12, phase: map[string]api.Phase{}, chain: map[string]time.Time{}}
}

func (h *headless) event(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch ev.Kind {
	case api.EventLog:
		h.line(ev.Resource, ev.Text)
	case api.EventConfig:
		if ev.Text != "" {
			h.line("Tiltfile", "ERROR: "+ev.Text)
		} else {
			h.line("Tiltfile", "loaded")
		}
	case api.EventStatus:
		st := ev.Status
		if st == nil {
			return
		}
		if c := st.Chain; c != nil && len(c.Links) > 1 && c.Total() > 0 && !c.Root.Equal(h.chain[st.Name]) {
			h.chain[st.Name] = c.Root
			h.line(st.Name, describeChain(c))
		}
		if h.phase[st.Name] == st.Phase {
			return
		}
		h.phase[st.Name] = st.Phase
		h.line(st.Name, describe(st))
	}
}

func (h *headless) line(res, text string) {
	if len(res) > h.width {
		h.width = len(res)
	}
	for _, l := range strings.Split(text, "\n") {
		fmt.Fprintf(h.w, "%*s │ %s\n", h.width, res, l)
	}
}

// describeChain renders a chain across resources: its total and its
// phases of at least 1 % of it.
func describeChain(c *api.Chain) string {
	var parts []string
	for _, p := range c.Phases {
		if p.Duration*100 >= c.Total() {
			parts = append(parts, fmt.Sprintf("%s %s %s", p.Resource, p.Name, fmtDur(p.Duration)))
		}
	}
	root := string(c.Cause)
	if c.Path != "" {
		root += " " + c.Path
	}
	return fmt.Sprintf("⛓ %s → ready in %s (%s)", root, fmtDur(c.Total()), strings.Join(parts, ", "))
}

// writer returns an io.Writer whose lines are printed as res's log lines.
func (h *headless) writer(res string) io.Writer { return headlessWriter{h, res} }

type headlessWriter struct {
	h   *headless
	res string
}

func (w headlessWriter) Write(p []byte) (int, error) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.h.line(w.res, strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// describe renders a status change as a person reads it.
func describe(st *api.ResourceStatus) string {
	switch st.Phase {
	case api.PhaseReady, api.PhaseRunning:
		s := "● " + string(st.Phase)
		if u := st.LastUpdate; u != nil {
			s += fmt.Sprintf(" after %s %s", u.Kind, fmtDur(u.Total()))
			if len(u.Spans) > 0 {
				var parts []string
				for _, sp := range u.Spans {
					parts = append(parts, string(sp.Name)+" "+fmtDur(sp.Duration))
				}
				s += " (" + strings.Join(parts, ", ") + ")"
			}
		}
		return s
	case api.PhaseError:
		return "✗ error: " + st.Error
	case api.PhaseUpdating:
		return "… updating"
	default:
		return "○ " + string(st.Phase)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0ms"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
