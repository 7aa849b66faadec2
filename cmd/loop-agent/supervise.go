package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// superviseSocket is where the supervisor listens for restart requests and
// where the session agent sends them (both run in the same container).
var superviseSocket = "/.loop/supervise.sock"

// defaultGrace is how long a stopping process may take after SIGTERM before
// it is killed, when the request names none (Docker's own default).
const defaultGrace = 10 * time.Second

// errNoSupervisor prefixes a RestartProcess failure caused by there being no
// supervisor to ask (the container was not started under `supervise`).
var errNoSupervisor = errors.New("no supervisor")

// superviseMain runs `supervise [-socket PATH] -- CMD ARGS...` and returns
// the exit code the agent should exit with.
func superviseMain(args []string, stderr io.Writer) int {
	fl := flag.NewFlagSet("supervise", flag.ContinueOnError)
	fl.SetOutput(stderr)
	sock := fl.String("socket", superviseSocket, "unix socket restart requests arrive on")
	keep := fl.Bool("keep-on-exit", false, "when the command exits on its own, keep the container running and start the command again at the next restart request (restart_process' exit_policy='continue')")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fmt.Fprintln(stderr, "loop-agent supervise: no command (usage: supervise [-socket PATH] -- CMD ARGS...)")
		return 2
	}
	s := &supervisor{argv: fl.Args(), socket: *sock, stderr: stderr, keep: *keep}
	return s.run()
}

// supervisor runs one command as its child and restarts it on request.
type supervisor struct {
	argv   []string
	socket string
	stderr io.Writer
	keep   bool // the command's own exit leaves the supervisor waiting for a restart

	connMu    sync.Mutex
	conns     map[*os.File]bool // open request connections, closed at exit
	connsShut bool              // set at exit: new connections are refused
}

type restartReq struct {
	grace time.Duration
	reply chan restartReply // buffered: the loop never blocks on it
}

type restartReply struct {
	pid int
	err error
}

// stopSignals end the container when they arrive during a restart: the
// process being stopped is not started again.
var stopSignals = map[syscall.Signal]bool{syscall.SIGTERM: true, syscall.SIGINT: true, syscall.SIGQUIT: true}

// run starts the command and owns it until it exits on its own (or from a
// forwarded signal); it returns the code to exit with.
func (s *supervisor) run() int {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs) // every signal: forward what the container receives
	defer signal.Stop(sigs)
	// Orphans of the command are re-parented to us even when we are not
	// PID 1 (init: true), so we can reap them and kill them on restart.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)

	restarts := make(chan restartReq)
	done := make(chan struct{}) // closed when run returns: handlers give up
	var wg sync.WaitGroup
	ln, err := listen(s.socket)
	if err != nil {
		fmt.Fprintf(s.stderr, "loop-agent supervise: restarts from loop disabled: %v\n", err)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.accept(ln, restarts, done, &wg)
		}()
	}
	defer func() {
		close(done)
		if ln != nil {
			_ = ln.Close()
			_ = os.Remove(s.socket)
		}
		s.closeConns()
		wg.Wait()
	}()

	pid, err := s.start()
	if err != nil {
		fmt.Fprintf(s.stderr, "loop-agent supervise: %v\n", err)
		return startFailureCode(err)
	}
	var (
		restarting, exiting bool
		pending             []chan restartReply
		kill                *time.Timer
		killC               <-chan time.Time
		lastCode            int  // the command's exit code while none runs (keep)
		stopping            bool // a stop signal was passed on: an exit is final
	)
	answer := func(r restartReply) {
		for _, c := range pending {
			c <- r
		}
		pending = nil
	}
	for {
		select {
		case sig := <-sigs:
			ss, _ := sig.(syscall.Signal)
			switch ss {
			case syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPIPE:
				// SIGURG is the Go runtime's own preemption signal.
			default:
				if pid == 0 {
					// Kept after the command exited: a stop ends the container.
					if stopSignals[ss] {
						return lastCode
					}
					continue
				}
				_ = syscall.Kill(-pid, ss)
				stopping = stopping || stopSignals[ss]
				if restarting && stopSignals[ss] {
					exiting = true
				}
			}
			if pid == 0 {
				_, _ = reap(0) // orphans only
				continue
			}
			// Reap on every signal, not only SIGCHLD: signals coalesce.
			status, exited := reap(pid)
			if !exited {
				continue
			}
			if kill != nil {
				kill.Stop()
				kill, killC = nil, nil
			}
			if !restarting && s.keep && !stopping {
				lastCode = exitCode(status)
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				pid = 0
				fmt.Fprintf(s.stderr, "loop-agent supervise: the process exited with code %d; it starts again at the next restart\n", lastCode)
				continue
			}
			if !restarting || exiting {
				answer(restartReply{err: errors.New("the process exited; the container is stopping")})
				return exitCode(status)
			}
			// Whatever the old process left in its group must not hold
			// on to ports or files the new one needs.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			restarting = false
			npid, err := s.start()
			if err != nil {
				fmt.Fprintf(s.stderr, "loop-agent supervise: restart: %v\n", err)
				answer(restartReply{err: err})
				return startFailureCode(err)
			}
			pid = npid
			answer(restartReply{pid: pid})
		case r := <-restarts:
			if exiting {
				r.reply <- restartReply{err: errors.New("the container is stopping")}
				continue
			}
			pending = append(pending, r.reply)
			if restarting {
				continue // one restart answers every request made during it
			}
			if pid == 0 {
				// Kept after the command exited: start it again now.
				npid, err := s.start()
				if err != nil {
					fmt.Fprintf(s.stderr, "loop-agent supervise: restart: %v\n", err)
					answer(restartReply{err: err})
					continue
				}
				pid = npid
				answer(restartReply{pid: pid})
				continue
			}
			restarting = true
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			grace := r.grace
			if grace <= 0 {
				grace = defaultGrace
			}
			kill = time.NewTimer(grace)
			killC = kill.C
		case <-killC:
			kill, killC = nil, nil
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, linux/prctl.h

// start runs the command in its own process group with our stdin, stdout
// and stderr, so its output reaches the container's log unchanged.
func (s *supervisor) start() (int, error) {
	path, err := exec.LookPath(s.argv[0])
	if err != nil && !errors.Is(err, exec.ErrDot) {
		return 0, fmt.Errorf("exec %s: %w", s.argv[0], err)
	}
	pid, err := syscall.ForkExec(path, s.argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("exec %s: %w", s.argv[0], err)
	}
	return pid, nil
}

// startFailureCode is what a shell (and Docker) report for a command that
// cannot be executed: 127 when it is not found, 126 otherwise.
func startFailureCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOENT) {
		return 127
	}
	return 126
}

// reap collects every exited child (the command and any orphan re-parented
// to us) and reports whether pid was among them, with its status.
func reap(pid int) (syscall.WaitStatus, bool) {
	var (
		found  bool
		status syscall.WaitStatus
	)
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || wpid <= 0 {
			return status, found
		}
		if wpid == pid {
			found, status = true, ws
		}
	}
}

// exitCode maps a wait status the way Docker reports a container's exit.
func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// The restart socket uses raw system calls rather than package net, which
// would add a third to the agent's size.

// listen opens the restart socket, replacing one left by an earlier run of
// the container.
func listen(path string) (*os.File, error) {
	_ = os.Remove(path)
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: socket: %w", path, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := syscall.Listen(fd, 16); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Non-blocking: the runtime's poller serves it, and Close wakes Accept.
	return os.NewFile(uintptr(fd), path), nil
}

// acceptOne waits for a connection on ln; it fails once ln is closed.
func acceptOne(ln *os.File) (*os.File, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	for {
		var nfd int
		var aerr error
		if err := rc.Read(func(fd uintptr) bool {
			nfd, _, aerr = syscall.Accept4(int(fd), syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK)
			return aerr != syscall.EAGAIN
		}); err != nil {
			return nil, err
		}
		switch aerr {
		case nil:
			return os.NewFile(uintptr(nfd), "restart request"), nil
		case syscall.EINTR, syscall.ECONNABORTED:
			continue
		}
		return nil, aerr
	}
}

// accept serves restart requests until ln is closed. Each connection
// carries one request line, `restart <grace-ms>`, answered with
// `ok <pid>` or `error <message>`.
func (s *supervisor) accept(ln *os.File, restarts chan<- restartReq, done <-chan struct{}, wg *sync.WaitGroup) {
	for {
		c, err := acceptOne(ln)
		if err != nil {
			return
		}
		if !s.track(c) {
			_ = c.Close()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(c)
			s.handle(c, restarts, done)
		}()
	}
}

func (s *supervisor) handle(c *os.File, restarts chan<- restartReq, done <-chan struct{}) {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	if verb != "restart" {
		fmt.Fprintf(c, "error unknown request %q\n", verb)
		return
	}
	ms, _ := strconv.ParseInt(arg, 10, 64)
	req := restartReq{grace: time.Duration(ms) * time.Millisecond, reply: make(chan restartReply, 1)}
	select {
	case restarts <- req:
	case <-done:
		fmt.Fprintln(c, "error the supervisor is exiting")
		return
	}
	select {
	case r := <-req.reply:
		if r.err != nil {
			fmt.Fprintf(c, "error %s\n", oneLine(r.err.Error()))
			return
		}
		fmt.Fprintf(c, "ok %d\n", r.pid)
	case <-done:
		fmt.Fprintln(c, "error the supervisor is exiting")
	}
}

func (s *supervisor) track(c *os.File) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.connsShut {
		return false
	}
	if s.conns == nil {
		s.conns = map[*os.File]bool{}
	}
	s.conns[c] = true
	return true
}

func (s *supervisor) untrack(c *os.File) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	delete(s.conns, c)
	_ = c.Close()
}

// closeConns unblocks handlers still reading a request and refuses later
// ones.
func (s *supervisor) closeConns() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.connsShut = true
	for c := range s.conns {
		_ = c.Close()
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// restartProcess asks the supervisor listening on sock to restart its
// process and returns the new PID. It is what the session agent does for a
// RestartProcess request.
func restartProcess(sock string, grace time.Duration) (int, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("restart: socket: %w", err)
	}
	c := os.NewFile(uintptr(fd), sock)
	defer c.Close()
	if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		return 0, fmt.Errorf("%w: connect to %s: %w", errNoSupervisor, sock, err)
	}
	if _, err := fmt.Fprintf(c, "restart %d\n", grace.Milliseconds()); err != nil {
		return 0, fmt.Errorf("send restart request: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read restart reply: %w", err)
	}
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch verb {
	case "ok":
		pid, err := strconv.Atoi(arg)
		if err != nil {
			return 0, fmt.Errorf("restart reply %q: %w", line, err)
		}
		return pid, nil
	case "error":
		return 0, fmt.Errorf("restart: %s", arg)
	}
	return 0, fmt.Errorf("restart: unexpected reply %q", line)
}
