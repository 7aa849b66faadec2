package engine

import (
	"context"
	"io"
	"sync"
)

// supervisor owns one definition of one resource: its runtime, its updates
// and its stop. It runs on a goroutine of its own, takes commands from the
// engine goroutine through a mailbox that never blocks the sender, and
// reports back with messages. Whatever waits (a build, a grace period, a
// log stream ending) waits here, never in the engine's loop.
type supervisor struct {
	name string
	gen  int
	res  *Resource
	host Host
	// daemonLog is the daemon's own log (lines of no resource).
	daemonLog io.Writer
	// after is closed when the previous definition's supervisor has ended:
	// its serve command has let go of its port before this one starts.
	after <-chan struct{}

	ctx    context.Context // cancelled by end
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	queue     []command
	updCancel context.CancelFunc // the running update's
	wake      chan struct{}

	rt Runtime // owned by run
}

type commandOp int

const (
	cmdUpdate commandOp = iota // run job
	cmdClose                   // close the runtime (disable); it reopens on the next update
	cmdEnd                     // close and end; remove what was deployed when remove is set
)

type command struct {
	op     commandOp
	job    Job
	remove bool
}

// supResult is an update's outcome, from a supervisor to the engine.
type supResult struct {
	name    string
	gen     int
	outcome Outcome
}

// supReport is a runtime's report between updates.
type supReport struct {
	name   string
	gen    int
	report Report
}

// supEnded says a supervisor has closed its runtime and ended.
type supEnded struct {
	name string
	gen  int
}

func (e *Engine) newSupervisor(ctx context.Context, st *state, after <-chan struct{}) *supervisor {
	sctx, cancel := context.WithCancel(ctx)
	s := &supervisor{
		name: st.res.Name, gen: st.gen, res: st.res, after: after,
		ctx: sctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1),
		daemonLog: e.logWriter(""),
	}
	name, gen := s.name, s.gen
	s.host = Host{
		Log:        e.logWriter(name),
		ProcessLog: e.processLog(sctx, st),
		CI:         e.opts.Mode == ModeCI,
		Now:        e.now,
		Report: func(r Report) {
			select {
			case e.msgs <- supReport{name: name, gen: gen, report: r}:
			case <-sctx.Done():
			}
		},
	}
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		s.run(ctx, e.msgs)
	}()
	return s
}

// send queues a command; it never blocks.
func (s *supervisor) send(c command) {
	s.mu.Lock()
	s.queue = append(s.queue, c)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// interrupt cancels the running update, if any, and queues c: a disabled,
// replaced or removed resource does not finish a build first.
func (s *supervisor) interrupt(c command) {
	s.mu.Lock()
	if s.updCancel != nil {
		s.updCancel()
	}
	s.mu.Unlock()
	if c.op == cmdEnd {
		s.cancel()
	}
	s.send(c)
}

func (s *supervisor) next() (command, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return command{}, false
	}
	c := s.queue[0]
	s.queue = s.queue[1:]
	return c, true
}

// run carries out commands in order until the end. Results always reach the
// engine (it drains them while shutting down), so running counts stay true.
// runCtx outlives an end, so that removing deployed objects is not cancelled
// by the end itself.
func (s *supervisor) run(runCtx context.Context, out chan<- any) {
	defer close(s.done)
	if s.after != nil {
		<-s.after
	}
	for {
		c, ok := s.next()
		if !ok {
			<-s.wake
			continue
		}
		switch c.op {
		case cmdUpdate:
			if s.rt == nil {
				s.rt = s.res.Open(s.host)
			}
			uctx, cancel := context.WithCancel(s.ctx)
			s.mu.Lock()
			s.updCancel = cancel
			s.mu.Unlock()
			o := s.rt.Update(uctx, c.job)
			s.mu.Lock()
			s.updCancel = nil
			s.mu.Unlock()
			cancel()
			out <- supResult{name: s.name, gen: s.gen, outcome: o}
		case cmdClose:
			s.close()
		case cmdEnd:
			s.close()
			if c.remove && s.res.Remove != nil {
				s.res.Remove(runCtx, s.daemonLog)
			}
			out <- supEnded{name: s.name, gen: s.gen}
			return
		}
	}
}

func (s *supervisor) close() {
	if s.rt != nil {
		s.rt.Close()
		s.rt = nil
	}
}
