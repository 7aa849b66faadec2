package tui

import "charm.land/bubbles/v2/key"

// keyMap holds every binding; the footer shows them through bubbles/help.
type keyMap struct {
	Up, Down, Expand, Trigger, Tab1, Tab2, Tab3, Search, Follow, PageUp, PageDown, Top, Bottom, Help, Quit key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Expand:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "expand")),
		Trigger:  key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "trigger")),
		Tab1:     key.NewBinding(key.WithKeys("1"), key.WithHelp("1", "logs")),
		Tab2:     key.NewBinding(key.WithKeys("2"), key.WithHelp("2", "build")),
		Tab3:     key.NewBinding(key.WithKeys("3"), key.WithHelp("3", "timing")),
		Search:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "search")),
		Follow:   key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "follow")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+u"), key.WithHelp("pgup", "scroll up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+d"), key.WithHelp("pgdn", "scroll down")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "top")),
		Bottom:   key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "bottom")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// Help-only bindings that name several keys at once in the footer.
var (
	selectHelp = key.NewBinding(key.WithKeys("up"), key.WithHelp("↑↓/jk", "select"))
	tabsHelp   = key.NewBinding(key.WithKeys("1"), key.WithHelp("1-3", "tabs"))
)

// ShortHelp is the one-line footer, most needed first (it is cut on the right).
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{selectHelp, k.Trigger, tabsHelp, k.Search, k.Expand, k.Help, k.Quit}
}

// FullHelp is the `?` view.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.Expand, k.Trigger},
		{k.Tab1, k.Tab2, k.Tab3, k.Search},
		{k.Follow, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Help, k.Quit},
	}
}
