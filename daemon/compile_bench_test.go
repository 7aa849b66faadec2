package daemon_test

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkGoCompileInLoop asks whether examples/hello's compile is slower
// inside loop than outside it. Per round, interleaved so that machine load
// hits each alike: the same go build on a copy outside the watched tree
// (side-quiet), the same while the service is polled every 2 ms as (f) polls
// it (side-polled), then a save compiled by loop's local_resource, timed by
// the chain's cmd phase, with the service polled until it answers
// (loop-polled) and without polling, waiting for the chain only
// (loop-quiet). CPU time (user + system) of the children the test process
// reaped over each step, the compile's processes in both cases (loop runs in
// this process), says whether the same work is done: side-cpu, loop-cpu.
func BenchmarkGoCompileInLoop(b *testing.B) {
	h, dir, get := startHello(b)
	side := newCompileAside(b, dir)
	var quiet, polled, loopPolled, loopQuiet, sideCPU, loopCPU []time.Duration
	save := func(i int, poll bool) time.Duration {
		cpu0 := childCPU(b)
		defer func() { loopCPU = append(loopCPU, childCPU(b)-cpu0) }()
		msg := fmt.Sprintf("edit %d %v %d", i, poll, time.Now().UnixNano())
		t0 := time.Now()
		setMessage(b, dir, msg)
		for poll && get() != msg+"\n" {
			time.Sleep(2 * time.Millisecond)
		}
		d := cmdPhase(h.waitChain(time.Minute, "hello", t0))
		h.waitReady(time.Minute, "hello-compile", "hello")
		return d
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpu0 := childCPU(b)
		quiet = append(quiet, side.run(b, 2*i))
		sideCPU = append(sideCPU, childCPU(b)-cpu0)
		polled = append(polled, side.runPolled(b, 2*i+1, 2*time.Millisecond, get))
		loopPolled = append(loopPolled, save(i, true))
		loopQuiet = append(loopQuiet, save(i, false))
	}
	b.StopTimer()
	reportSpread(b, "side-quiet-", quiet)
	reportSpread(b, "side-polled-", polled)
	reportSpread(b, "loop-polled-", loopPolled)
	reportSpread(b, "loop-quiet-", loopQuiet)
	reportSpread(b, "side-cpu-", sideCPU)
	reportSpread(b, "loop-cpu-", loopCPU)
	b.ReportMetric(0, "ns/op")
}

// childCPU is the CPU time of every child process reaped so far.
func childCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runPolled is run while get is called every poll, as the edit polls the service
// while loop compiles.
func (c compileAside) runPolled(b *testing.B, i int, poll time.Duration, get func() string) time.Duration {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(poll):
				get()
			}
		}
	})
	defer wg.Wait()
	defer close(stop)
	return c.run(b, i)
}
