package tui

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
)

// probe wraps the UI to time keypress → frame: Update notes when a key
// arrives, View (the frame Bubble Tea renders next) notes when its effect
// is drawn.
type probe struct {
	*Model
	mu      sync.Mutex
	pressed time.Time
	lat     []time.Duration
	frames  int
	seen    chan struct{}
}

func (p *probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(tea.KeyPressMsg); ok {
		p.mu.Lock()
		p.pressed = time.Now()
		p.mu.Unlock()
	}
	_, cmd := p.Model.Update(msg)
	return p, cmd
}

func (p *probe) View() tea.View {
	v := p.Model.View()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frames++
	if !p.pressed.IsZero() {
		p.lat = append(p.lat, time.Since(p.pressed))
		p.pressed = time.Time{}
		p.seen <- struct{}{}
	}
	return v
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLogFlood: 50 resources logging 10,000 lines a second in total
// while keys are pressed; reports keypress-to-frame latency (p50, p99, max)
// and the CPU the process used (the UI plus the fake feed) as a share of
// one core. One op is one keypress.
func BenchmarkLogFlood(b *testing.B) {
	const resources, perSecond = 50, 10000
	f := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var res []api.ResourceStatus
	for i := 0; i < resources; i++ {
		res = append(res, api.ResourceStatus{Name: fmt.Sprintf("svc-%02d", i), Type: "compose", Phase: api.PhaseReady})
	}
	f.ch <- snap(res...)
	m := &probe{Model: New(ctx, f, Options{}), seen: make(chan struct{}, 1)}
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(nil), tea.WithOutput(io.Discard),
		tea.WithWindowSize(120, 40), tea.WithoutSignals())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = p.Run() }()
	go func() { // the flood: 100 lines every 10ms, round-robin over resources
		defer wg.Done()
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			for i := 0; i < perSecond/100; i++ {
				n++
				msg := client.Message{Event: &api.Event{Kind: api.EventLog, Resource: fmt.Sprintf("svc-%02d", n%resources),
					Text: fmt.Sprintf("%s GET /api/items/%d 200 %dµs", time.Now().Format(time.RFC3339Nano), n, n%997)}}
				select {
				case f.ch <- msg:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	start := time.Now()
	time.Sleep(300 * time.Millisecond) // the flood is running
	keys := []tea.KeyPressMsg{keyMsg("j"), keyMsg("j"), keyMsg("k"), keyMsg("2"), keyMsg("1"), keyMsg("pgup"), keyMsg("G")}
	cpu0, wall0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Send(keys[i%len(keys)])
		select {
		case <-m.seen:
		case <-time.After(5 * time.Second):
			b.Fatal("no frame within 5s of a keypress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	cancel()
	p.Kill()
	wg.Wait()
	m.mu.Lock()
	lat := append([]time.Duration(nil), m.lat...)
	frames := m.frames
	m.mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(pct(0.50), "ms-key-p50")
	b.ReportMetric(pct(0.99), "ms-key-p99")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "ms-key-max")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%")
	b.ReportMetric(float64(frames)/wall.Seconds(), "frames/s")
	var lines int
	for _, r := range m.st.res {
		lines += r.logs.total
	}
	b.ReportMetric(float64(lines)/time.Since(start).Seconds(), "lines/s")
}
