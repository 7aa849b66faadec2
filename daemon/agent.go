package daemon

import "github.com/loop-dev/loop/daemon/internal/agent"

// AgentArches lists the architectures of the sync agents embedded in this
// binary (each is a linux/ARCH binary), sorted: containers of any other
// architecture get no live update.
func AgentArches() []string { return agent.Arches() }
