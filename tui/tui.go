// Package tui is loop's terminal UI: a Bubble Tea v2 program that is a
// client of the daemon like any CLI verb. It knows only daemon/api and
// daemon/client types, through the Source interface, so tests drive it with
// a fake and `loop up` and `loop ui` attach it the same way.
//
// The root Model only routes: messages to the state, keys to the component
// that owns them (table, detail tabs, footer), and View stitches their
// output. Under a log flood the stream is read in batches no more often than
// once per frame interval, and View renders only the visible window.
package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
)

// Source is the daemon as the UI sees it.
type Source interface {
	// Subscribe follows the daemon until ctx is done (see client.Client.Subscribe).
	Subscribe(ctx context.Context, o client.SubscribeOptions) <-chan client.Message
	// Trigger updates a resource now.
	Trigger(ctx context.Context, name string) error
}

// Options tune the UI.
type Options struct {
	// StopsDaemon says quitting also stops the daemon (loop up): q asks first.
	StopsDaemon bool
	// LogLines is how many lines per resource the UI keeps (default 2000).
	LogLines int
	// FrameInterval is the least time between two reads of the event
	// stream, so a flood costs one redraw per interval (default 33ms).
	FrameInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Messages of the program.
type (
	streamMsg    []client.Message
	streamEndMsg struct{}
	tickMsg      time.Time
	triggeredMsg struct {
		name string
		err  error
	}
)

// Model is the root of the UI.
type Model struct {
	ctx  context.Context
	src  Source
	o    Options
	sub  <-chan client.Message
	sty  styles
	keys keyMap
	help help.Model

	st     *state
	table  table
	detail detail

	width, height int
	frame         int
	expanded      bool
	confirmQuit   bool
	searching     bool
	search        textinput.Model
	flash         string
	lastRead      time.Time
}

// New returns the UI's model; nothing is read until Init.
func New(ctx context.Context, src Source, o Options) *Model {
	if o.LogLines <= 0 {
		o.LogLines = 2000
	}
	if o.FrameInterval <= 0 {
		o.FrameInterval = 33 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ti := textinput.New()
	ti.Prompt = "/"
	h := help.New()
	return &Model{
		ctx: ctx, src: src, o: o, sty: newStyles(), keys: newKeyMap(), help: h,
		st: newState(o.LogLines), detail: newDetail(), search: ti, width: 80, height: 24,
	}
}

// Run shows the UI on the terminal until the user quits or ctx is done.
func Run(ctx context.Context, src Source, o Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the subscription
	p := tea.NewProgram(New(ctx, src, o), tea.WithContext(ctx))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// Init subscribes to the daemon and starts the clock.
func (m *Model) Init() tea.Cmd {
	m.sub = m.src.Subscribe(m.ctx, client.SubscribeOptions{LogTail: m.o.LogLines})
	return tea.Batch(m.read(0), m.tick())
}

// read waits delay, then returns everything the stream holds as one batch:
// a flood of lines becomes one Update and one frame.
func (m *Model) read(delay time.Duration) tea.Cmd {
	sub := m.sub
	return func() tea.Msg {
		if delay > 0 {
			time.Sleep(delay)
		}
		first, ok := <-sub
		if !ok {
			return streamEndMsg{}
		}
		batch := streamMsg{first}
		for len(batch) < 8192 {
			select {
			case msg, ok := <-sub:
				if !ok {
					return batch
				}
				batch = append(batch, msg)
			default:
				return batch
			}
		}
		return batch
	}
}

func (m *Model) tick() tea.Cmd {
	d := time.Second
	for _, r := range m.st.res {
		if r.status.Phase == "updating" {
			d = 100 * time.Millisecond // the spinner turns
			break
		}
	}
	return tea.Tick(d, func(t time.Time) tea.Msg { return tickMsg(t) })
}

func (m *Model) selected() *resource {
	if len(m.st.order) == 0 {
		return nil
	}
	if m.table.sel >= len(m.st.order) {
		m.table.sel = len(m.st.order) - 1
	}
	return m.st.res[m.st.order[m.table.sel]]
}

// Update routes a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.SetWidth(msg.Width)
		m.table.cache = nil
	case streamMsg:
		for _, sm := range msg {
			m.st.apply(sm)
		}
		// Wait out the rest of the frame interval before reading again.
		now := time.Now()
		wait := m.o.FrameInterval - now.Sub(m.lastRead)
		m.lastRead = now
		if wait < 0 {
			wait = 0
		}
		return m, m.read(wait)
	case streamEndMsg:
		return m, nil
	case tickMsg:
		m.frame++
		return m, m.tick()
	case triggeredMsg:
		if msg.err != nil {
			m.flash = "trigger " + msg.name + ": " + msg.err.Error()
		} else {
			m.flash = "triggered " + msg.name
		}
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

func (m *Model) key(msg tea.KeyPressMsg) tea.Cmd {
	k := msg.String()
	if k == "ctrl+c" {
		return tea.Quit
	}
	if m.confirmQuit {
		m.confirmQuit = false
		if k == "y" || k == "Y" || k == "q" {
			return tea.Quit
		}
		return nil
	}
	if m.searching {
		switch k {
		case "enter":
			m.searching = false
			m.detail.query = m.search.Value()
			m.detail.tab = tabLogs
			return nil
		case "esc":
			m.searching = false
			return nil
		}
		var cmd tea.Cmd
		m.search, cmd = m.search.Update(msg)
		return cmd
	}
	m.flash = ""
	r := m.selected()
	bodyH := m.detailHeight()
	switch {
	case key.Matches(msg, m.keys.Quit):
		if m.o.StopsDaemon {
			m.confirmQuit = true
			return nil
		}
		return tea.Quit
	case key.Matches(msg, m.keys.Up):
		m.table.move(-1, len(m.st.order))
		m.detail.follow = true
	case key.Matches(msg, m.keys.Down):
		m.table.move(1, len(m.st.order))
		m.detail.follow = true
	case key.Matches(msg, m.keys.Expand):
		m.expanded = !m.expanded
	case key.Matches(msg, m.keys.Tab1):
		m.detail.tab = tabLogs
	case key.Matches(msg, m.keys.Tab2):
		m.detail.tab = tabBuild
	case key.Matches(msg, m.keys.Tab3):
		m.detail.tab = tabTiming
	case key.Matches(msg, m.keys.Search):
		m.searching = true
		m.search.SetValue(m.detail.query)
		m.search.CursorEnd()
		return m.search.Focus()
	case k == "esc":
		m.detail.query = ""
		m.expanded = false
	case key.Matches(msg, m.keys.Help):
		m.help.ShowAll = !m.help.ShowAll
	case r != nil && key.Matches(msg, m.keys.Trigger):
		name := r.status.Name
		m.flash = "triggering " + name + "…"
		src, ctx := m.src, m.ctx
		return func() tea.Msg { return triggeredMsg{name: name, err: src.Trigger(ctx, name)} }
	case r != nil && key.Matches(msg, m.keys.PageUp):
		m.detail.scroll(r.logs, -bodyH, bodyH)
	case r != nil && key.Matches(msg, m.keys.PageDown):
		m.detail.scroll(r.logs, bodyH, bodyH)
	case r != nil && key.Matches(msg, m.keys.Top):
		m.detail.scroll(r.logs, -r.logs.total, bodyH)
	case key.Matches(msg, m.keys.Bottom), key.Matches(msg, m.keys.Follow):
		m.detail.follow = true
	}
	return nil
}

// layout: header (1), config error (0-3), table, detail, footer.
func (m *Model) footerLines() []string {
	switch {
	case m.confirmQuit:
		return []string{m.sty.warn.Render("Stop the daemon and quit? (y/n)")}
	case m.searching:
		return []string{m.search.View()}
	}
	var out []string
	if m.flash != "" {
		out = append(out, ansi.Truncate(m.flash, m.width, "…"))
	}
	// bubbles/help can overrun the width by one item; cut every line.
	for _, l := range strings.Split(m.help.View(m.keys), "\n") {
		out = append(out, ansi.Truncate(l, m.width, "…"))
	}
	return out
}

func (m *Model) configLines() []string {
	e := m.st.info.ConfigError
	if e == "" {
		if n := strings.TrimSpace(m.st.note); n != "" {
			return []string{m.sty.dim.Render(ansi.Truncate("· "+n, m.width, "…"))}
		}
		return nil
	}
	var out []string
	for i, l := range strings.Split(e, "\n") {
		if i == 3 {
			break
		}
		if i == 0 {
			l = "✗ Tiltfile: " + l
		} else {
			l = "  " + l
		}
		out = append(out, m.sty.bad.Render(ansi.Truncate(l, m.width, "…")))
	}
	return out
}

func (m *Model) tableHeight(avail int) int {
	if m.expanded {
		return 2 // the header row and the selected resource
	}
	h := len(m.st.order) + 1
	if h > avail/2 {
		h = avail / 2
	}
	if h < 2 {
		h = 2
	}
	return h
}

// layout renders everything above the detail pane and says how many rows
// the pane gets.
func (m *Model) layout() (top []string, detailH int, foot []string) {
	foot = m.footerLines()
	top = append([]string{m.header()}, m.configLines()...)
	if !m.st.connected && m.st.disconnect != "" {
		msg := "daemon unreachable, retrying: " + m.st.disconnect
		if m.st.everSynced {
			msg = "✗ lost the daemon (showing the last state), retrying: " + m.st.disconnect
		}
		top = append(top, m.sty.bad.Render(ansi.Truncate(msg, m.width, "…")))
	}
	th := m.tableHeight(m.height - len(top) - len(foot))
	t := &m.table
	if m.expanded {
		t = &table{sel: m.table.sel, offset: m.table.sel, cache: m.table.cache}
	}
	top = append(top, strings.Split(t.view(m.st, m.sty, m.width, th, m.frame, m.o.Now()), "\n")...)
	return top, m.height - len(top) - len(foot), foot
}

func (m *Model) detailHeight() int {
	_, h, _ := m.layout()
	return h - 1 // the tab bar
}

func (m *Model) header() string {
	now := m.o.Now()
	info := m.st.info
	parts := []string{m.sty.title.Render("loop")}
	if info.Project != "" {
		parts = append(parts, info.Project)
	}
	// A client's waits come first: the left side is cut from the right.
	if w := waitsText(info.Waits); w != "" {
		parts = append(parts, m.sty.title.Render(w))
	}
	if info.Docker != "" {
		parts = append(parts, "docker "+info.Docker)
	}
	if info.Kube != "" {
		parts = append(parts, "k8s "+info.Kube)
	}
	if !info.Started.IsZero() {
		parts = append(parts, "up "+fmtAge(now.Sub(info.Started)))
	}
	left := strings.Join(parts, " · ")
	var right string
	switch {
	case m.st.connected:
		right = m.sty.ok.Render("● connected")
	case !m.st.everSynced && m.st.disconnect == "":
		right = m.sty.dim.Render("○ connecting…")
	default:
		right = m.sty.bad.Render("✗ disconnected")
	}
	// The connection state always shows; the left side gives way.
	rw := ansi.StringWidth(right)
	left = ansi.Truncate(left, m.width-rw-1, "…")
	return left + strings.Repeat(" ", m.width-ansi.StringWidth(left)-rw) + right
}

// waitsText says who is waiting on what ("mcp: waiting on 2 resources"),
// so the person at the terminal sees what drives the loop.
func waitsText(ws []api.Wait) string {
	var out []string
	for _, w := range ws {
		who := w.Client
		if who == "" {
			who = "agent"
		}
		switch n := len(w.Resources); n {
		case 0:
			out = append(out, who+": waiting for the watcher")
		case 1:
			out = append(out, who+": waiting on "+w.Resources[0])
		default:
			out = append(out, fmt.Sprintf("%s: waiting on %d resources", who, n))
		}
	}
	return strings.Join(out, ", ")
}

// View draws the screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "loop " + m.st.info.Project
	return v
}

func (m *Model) render() string {
	if m.width < 20 || m.height < 8 {
		return "loop: the terminal is too small (need 20×8)"
	}
	lines, dh, foot := m.layout()
	if dh > 1 {
		lines = append(lines, strings.Split(m.detail.view(m.selected(), m.sty, m.width, dh), "\n")...)
	}
	for len(lines) < m.height-len(foot) {
		lines = append(lines, "")
	}
	return strings.Join(append(lines, foot...), "\n")
}
