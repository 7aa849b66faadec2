//go:build unix

package probe

import (
	"os/exec"
	"syscall"
)

// isolate runs cmd in its own process group and makes cancellation kill the
// whole group, so a timed-out probe leaves nothing behind.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
