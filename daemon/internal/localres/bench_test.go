package localres

import (
	"context"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"
)

// BenchmarkUpdateCmd is the overhead of one update of a trivial cmd: process
// group start, output pipes, wait, drain.
func BenchmarkUpdateCmd(b *testing.B) {
	rn := New(&model.LocalResource{Cmd: model.Cmd{Argv: []string{"true"}}}, nil)
	defer rn.Close()
	for b.Loop() {
		if _, err := rn.Update(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeRestart is one update that stops a running serve_cmd (which
// exits on SIGTERM) and starts the next.
func BenchmarkServeRestart(b *testing.B) {
	rn := New(&model.LocalResource{ServeCmd: model.Cmd{Argv: []string{"sleep", "60"}}}, nil, WithGracePeriod(time.Second))
	defer rn.Close()
	for b.Loop() {
		if _, err := rn.Update(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
