//go:build unix && !linux

package localres

// reap waits for the group leader, then kills what is left of its group.
// Without waitid(WNOWAIT) the leader is reaped first, so in the instant
// between the two the group id could in theory be recycled.
func (p *proc) reap() error {
	err := p.cmd.Wait()
	p.mu.Lock()
	p.killGroupLocked()
	p.mu.Unlock()
	return err
}
