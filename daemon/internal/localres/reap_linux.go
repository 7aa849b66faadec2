package localres

import (
	"errors"

	"golang.org/x/sys/unix"
)

// reap waits for the group leader to exit without reaping it (WNOWAIT): while
// it is a zombie its pid, and so the group id, cannot be reused, so killing
// the rest of the group cannot hit an unrelated process. Then it reaps.
func (p *proc) reap() error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.mu.Lock()
	p.killGroupLocked()
	p.mu.Unlock()
	return p.cmd.Wait()
}
