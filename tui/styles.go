package tui

import (
	"fmt"
	"time"

	"charm.land/lipgloss/v2"

	"github.com/loop-dev/loop/daemon/api"
)

// styles are the UI's colours. Every status also has a symbol, so nothing
// depends on colour alone: under NO_COLOR (which Bubble Tea honours when it
// picks the colour profile) the UI reads the same.
type styles struct {
	title, dim, ok, warn, bad, selected, tabOn, tabOff lipgloss.Style
}

func newStyles() styles {
	return styles{
		title:    lipgloss.NewStyle().Bold(true),
		dim:      lipgloss.NewStyle().Foreground(lipgloss.Color("8")),
		ok:       lipgloss.NewStyle().Foreground(lipgloss.Color("2")),
		warn:     lipgloss.NewStyle().Foreground(lipgloss.Color("3")),
		bad:      lipgloss.NewStyle().Foreground(lipgloss.Color("1")),
		selected: lipgloss.NewStyle().Bold(true),
		tabOn:    lipgloss.NewStyle().Bold(true).Underline(true),
		tabOff:   lipgloss.NewStyle().Foreground(lipgloss.Color("8")),
	}
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// phaseCell is a status as symbol and word, and the style it wears.
func (st styles) phaseCell(p api.Phase, frame int) (string, lipgloss.Style) {
	switch p {
	case api.PhaseReady:
		return "● ready", st.ok
	case api.PhaseRunning:
		return "◐ running", st.ok
	case api.PhaseUpdating:
		return spinnerFrames[frame%len(spinnerFrames)] + " updating", st.warn
	case api.PhaseError:
		return "✗ error", st.bad
	case api.PhaseDisabled:
		return "– disabled", st.dim
	default:
		return "○ " + string(p), st.dim
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
	case d < time.Minute:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

func fmtAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
