//go:build unix

package localres

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// drainTimeout bounds how long output is read after a command's process group
// is gone: a process that escaped the group (setsid) may still hold the pipes.
const drainTimeout = time.Second

// proc is one command running in its own process group, with its output
// copied line by line. Its goroutines (two readers and a supervisor) stop
// once the group leader has exited and the output is drained; done is closed
// then.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}

	mu     sync.Mutex // guards reaped against signals to a recycled group id
	reaped bool

	// state and waitErr are written before done is closed.
	state   *os.ProcessState
	waitErr error
}

// start runs argv in dir with env (nil inherits the daemon's environment) in
// a new process group, stdin from /dev/null, stdout and stderr to out.
func start(argv []string, dir string, env []string, out *lineWriter) (*proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("create stderr pipe: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	// *os.File outputs are handed to the child as they are: no copying
	// goroutine inside os/exec, and Wait does not wait for pipe EOF.
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Add(2)
	for _, f := range []*os.File{outR, errR} {
		go func() {
			defer readers.Done()
			copyLines(f, out)
		}()
	}
	go p.supervise(&readers, outR, errR)
	return p, nil
}

func (p *proc) supervise(readers *sync.WaitGroup, pipes ...*os.File) {
	defer close(p.done)
	p.waitErr = p.reap()
	p.state = p.cmd.ProcessState

	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		// Closing the read ends unblocks the readers.
		for _, f := range pipes {
			f.Close()
		}
		<-drained
	}
	for _, f := range pipes {
		f.Close()
	}
}

// killGroup sends SIGKILL to what is left of the group once the leader has
// exited: the command is over, and nothing may outlive it unsupervised.
// The caller must hold p.mu; it marks the group as no longer ours.
func (p *proc) killGroupLocked() {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.reaped = true
}

// signal sends sig to the whole process group, unless the group is gone.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		_ = syscall.Kill(-p.pid, sig)
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after grace, and waits
// for the supervisor to finish.
func (p *proc) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

// exit describes how the leader ended; call after done is closed.
func (p *proc) exit() (code int, sig string) {
	if p.state == nil {
		return -1, ""
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal().String()
	}
	return p.state.ExitCode(), ""
}
