//go:build !unix

package probe

import "os/exec"

// isolate leaves cmd as is: without process groups, cancellation kills only
// the probe process itself (os/exec's default).
func isolate(*exec.Cmd) {}
