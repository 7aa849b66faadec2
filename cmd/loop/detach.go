package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/client"
)

// detachedEnv marks the process `loop up --detach` starts: the same command
// line, run headless in the foreground of its own session. Re-running the
// user's own arguments keeps every flag without a second list of them.
const detachedEnv = "LOOP_DETACHED_DAEMON"

// detachedChild says this process is the daemon a `loop up --detach` started.
func detachedChild() bool { return os.Getenv(detachedEnv) == "1" }

// DaemonLogName is the file in the project's state directory that a detached
// daemon writes its headless log to.
const DaemonLogName = "daemon.log"

// detach starts `loop up` for tiltfile in the background and returns once its
// API answers. A daemon that already answers for the project is reused, so a
// lifecycle command (postStartCommand) may run it on every start.
func detach(ctx context.Context, tiltfile string, out io.Writer, timeout time.Duration) error {
	sock, err := daemon.SocketPath(tiltfile)
	if err != nil {
		return err
	}
	c := client.New(client.Options{Socket: sock})
	if snap, err := c.State(ctx, 0); err == nil {
		fmt.Fprintf(out, "loop is already running for %s (pid %d, socket %s)\n", tiltfile, snap.PID, sock)
		return nil
	}
	logPath := filepath.Join(filepath.Dir(sock), DaemonLogName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open the daemon log: %w", err)
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find loop's own binary: %w", err)
	}
	child := exec.Command(self, os.Args[1:]...)
	child.Env = append(os.Environ(), detachedEnv+"=1")
	child.Stdout, child.Stderr = logf, logf // stdin is /dev/null
	// Its own session: no terminal, and no signal meant for this command
	// (or for the shell of a lifecycle command) reaches it.
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return fmt.Errorf("start the daemon: %w", err)
	}
	pid := child.Process.Pid
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if snap, err := c.State(ctx, 0); err == nil && snap.PID == pid {
			// It outlives this command: nothing here waits for it.
			_ = child.Process.Release()
			fmt.Fprintf(out, "loop is running for %s in the background (pid %d)\n  API: %s\n  log: %s\n  `loop ui` attaches the terminal UI; `loop down` stops it and removes what it started\n",
				tiltfile, pid, sock, logPath)
			return nil
		}
		// Polled, not waited for in a goroutine: on success the child must
		// stay unwaited, and a goroutine blocked in Wait would have no end.
		var ws syscall.WaitStatus
		if wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && wpid == pid {
			return fmt.Errorf("start the daemon: it exited (status %d) before its API answered; its log %s ends:\n%s", ws.ExitStatus(), logPath, logTail(logPath, 20))
		}
		select {
		case <-ctx.Done():
			_ = child.Process.Kill()
			_, _ = child.Process.Wait()
			return fmt.Errorf("start the daemon: its API did not answer within %s; its log %s ends:\n%s", timeout, logPath, logTail(logPath, 20))
		case <-tick.C:
		}
	}
}

// logTail returns the last n lines of the file at path, indented.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// stopRunning stops the daemon serving tiltfile's project, if one answers,
// and waits until it is gone. It says whether one was running.
func stopRunning(ctx context.Context, tiltfile string, out io.Writer) (bool, error) {
	sock, err := daemon.SocketPath(tiltfile)
	if err != nil {
		return false, err
	}
	c := client.New(client.Options{Socket: sock})
	snap, err := c.State(ctx, 0)
	if errors.Is(err, client.ErrUnavailable) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := c.Stop(ctx); err != nil {
		return false, fmt.Errorf("stop the running daemon (pid %d): %w", snap.PID, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitGone(wctx); err != nil {
		return false, fmt.Errorf("stop the running daemon (pid %d): %w", snap.PID, err)
	}
	fmt.Fprintf(out, "stopped the loop daemon running for %s (pid %d)\n", tiltfile, snap.PID)
	return true, nil
}
