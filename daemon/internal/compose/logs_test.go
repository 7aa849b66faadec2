package compose

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// fakeLog is an engine holding one container's log whose follows end before
// the log's end, as dockerd 20.10's do when the container exits.
type fakeLog struct {
	DockerAPI
	tty  bool
	msgs []fakeMsg
	// followShows is how many messages (bytes for a terminal) of the log a
	// follow passes on.
	followShows int
	// after are the container's states the inspections after the first one
	// see, in turn, the last one repeated; nil: the container is gone.
	after []*container.State
	reads []container.LogsOptions
	seen  int
}

type fakeMsg struct {
	at     time.Duration // after fakeStart
	stderr bool
	text   string
}

var fakeStart = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *fakeLog) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	f.seen++
	st := &container.State{Running: true, Status: container.StateRunning, StartedAt: "first"}
	if f.seen > 1 {
		if f.after == nil {
			return container.InspectResponse{}, fmt.Errorf("inspect: %w", cerrdefs.ErrNotFound)
		}
		st = f.after[min(f.seen-2, len(f.after)-1)]
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{State: st},
		Config:            &container.Config{Tty: f.tty},
	}, nil
}

func (f *fakeLog) ContainerLogs(_ context.Context, _ string, o container.LogsOptions) (io.ReadCloser, error) {
	f.reads = append(f.reads, o)
	var since time.Time
	if o.Since != "" {
		sec, nsec, _ := strings.Cut(o.Since, ".")
		s, err1 := strconv.ParseInt(sec, 10, 64)
		ns, err2 := strconv.ParseInt(nsec, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad since %q", o.Since)
		}
		since = time.Unix(s, ns)
	}
	var out bytes.Buffer
	for i, m := range f.msgs {
		ts := fakeStart.Add(m.at)
		if o.Follow && !f.tty && i >= f.followShows {
			break
		}
		if ts.Before(since) {
			continue
		}
		switch {
		case f.tty:
			out.WriteString(m.text)
		case m.stderr:
			_, _ = stdcopy.NewStdWriter(&out, stdcopy.Stderr).Write([]byte(ts.Format(time.RFC3339Nano) + " " + m.text))
		default:
			_, _ = stdcopy.NewStdWriter(&out, stdcopy.Stdout).Write([]byte(ts.Format(time.RFC3339Nano) + " " + m.text))
		}
	}
	if o.Follow && f.tty {
		out.Truncate(min(out.Len(), f.followShows))
	}
	return io.NopCloser(&out), nil
}

// TestLogsReadsWhatTheFollowMissed checks that Logs passes on, once each,
// the messages a follow did not, whatever the container does after the
// follow ended.
func TestLogsReadsWhatTheFollowMissed(t *testing.T) {
	stopped := &container.State{Status: container.StateExited, StartedAt: "first"}
	stopping := &container.State{Running: true, Status: container.StateRunning, StartedAt: "first"}
	restarted := &container.State{Running: true, Status: container.StateRunning, StartedAt: "second"}
	msgs := []fakeMsg{
		{0, false, "one\n"},
		{time.Millisecond, true, "two\n"},
		{2 * time.Millisecond, false, "three\n"},
		// Logged after three but stamped before it (the engine's stdout and
		// stderr copiers race).
		{time.Millisecond + time.Microsecond, true, "late\n"},
		{3 * time.Millisecond, false, "four"},
	}
	for _, tc := range []struct {
		name        string
		followShows int
		after       []*container.State
		want        string
	}{
		{"stopped", 2, []*container.State{stopped}, "one\ntwo\nthree\nlate\nfour\n"},
		{"still running at first", 3, []*container.State{stopping, stopped}, "one\ntwo\nthree\nlate\nfour\n"},
		{"restarted", 3, []*container.State{restarted}, "one\ntwo\nthree\nlate\nfour\n"},
		{"nothing followed", 0, []*container.State{stopped}, "one\ntwo\nthree\nlate\nfour\n"},
		{"removed", 3, nil, "one\ntwo\nthree\n"},
	} {
		f := &fakeLog{msgs: msgs, followShows: tc.followShows, after: tc.after}
		var got bytes.Buffer
		if err := New(f).Logs(context.Background(), "c", time.Time{}, &got); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got.String() != tc.want {
			t.Errorf("%s: logs = %q, want %q (reads %+v)", tc.name, got.String(), tc.want, f.reads)
		}
	}
}

func TestLogsTerminalReadsWhatTheFollowMissed(t *testing.T) {
	f := &fakeLog{
		tty:         true,
		msgs:        []fakeMsg{{text: "one\r\ntwo\r\nthr"}, {text: "ee\r\nfour"}},
		followShows: len("one\r\ntw"),
		after:       []*container.State{{Status: container.StateExited, StartedAt: "first"}},
	}
	var got bytes.Buffer
	if err := New(f).Logs(context.Background(), "c", time.Time{}, &got); err != nil {
		t.Fatal(err)
	}
	if want := "one\r\ntwo\r\nthree\r\nfour\n"; got.String() != want {
		t.Errorf("logs = %q, want %q", got.String(), want)
	}
	if len(f.reads) != 2 || !f.reads[0].Follow || f.reads[1].Follow || f.reads[0].Timestamps {
		t.Errorf("reads = %+v, want a follow then a read, without timestamps", f.reads)
	}
}
