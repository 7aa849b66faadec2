//go:build !unix

package localres

import (
	"errors"
	"time"
)

// errUnsupported: local resources need Unix process groups to leave no
// orphans; Windows (cmd_bat, serve_cmd_bat) is not supported.
var errUnsupported = errors.New("local_resource commands are only supported on Unix")

type proc struct {
	pid  int
	done chan struct{}
}

func start([]string, string, []string, *lineWriter) (*proc, error) { return nil, errUnsupported }

func (p *proc) stop(time.Duration) {}

func (p *proc) exit() (int, string) { return -1, "" }
