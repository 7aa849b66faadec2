package liveupdate

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/internal/agentwire"
)

// DockerAPI is the part of the Docker client a DockerTarget needs.
type DockerAPI interface {
	agent.DockerAPI
	ContainerRestart(ctx context.Context, containerID string, options container.StopOptions) error
}

// DockerTarget applies updates to one Docker container. Files go through
// loop's sync agent over a held exec stream, installed and started on first
// use and reconnected after a restart or a broken stream. When the agent
// cannot run there (no binary for the architecture, or it will not execute)
// it falls back to CopyToContainer for writes and `rm -rf` through exec for
// deletes, and says so once in the logs. Restart restarts only the process
// when the container runs under the agent's supervisor. Safe for concurrent
// use.
type DockerTarget struct {
	cli DockerAPI
	id  string

	// NoAgent forces the archive-API fallback.
	NoAgent bool
	// RestartTimeout is the seconds to wait for the container to stop on
	// restart before killing it; nil leaves the engine's default.
	RestartTimeout *int

	mu          sync.Mutex // serialises Sync; guards the fields below
	sess        *agent.Session
	fallback    string // why the agent is not used; "" while it may be
	told        bool   // the fallback was reported in the logs
	sup         *supervisionInfo
	restartTold bool // a container restart was explained in the logs
}

// NewDockerTarget returns a target for the container with id.
func NewDockerTarget(cli DockerAPI, containerID string) *DockerTarget {
	return &DockerTarget{cli: cli, id: containerID}
}

// ContainerID is the container the target updates.
func (t *DockerTarget) ContainerID() string { return t.id }

// Connect starts the agent now, off the change path; Sync would otherwise
// do it on first use. It returns an error only when the container cannot be
// reached; an agent that cannot run selects the fallback.
func (t *DockerTarget) Connect(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.session(ctx)
	return err
}

// Close ends the agent session, if any.
func (t *DockerTarget) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sess != nil {
		t.sess.Close()
		t.sess = nil
	}
}

// session returns the live session, connecting when there is none; nil
// with no error means use the fallback. Callers hold t.mu.
func (t *DockerTarget) session(ctx context.Context) (*agent.Session, error) {
	if t.NoAgent && t.fallback == "" {
		t.fallback = "sync agent disabled"
	}
	if t.fallback != "" {
		return nil, nil
	}
	if t.sess != nil {
		return t.sess, nil
	}
	s, err := agent.Connect(ctx, t.cli, t.id)
	if errors.Is(err, agent.ErrNoBinary) || errors.Is(err, agent.ErrNotInstalled) {
		t.fallback = err.Error()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t.sess = s
	return s, nil
}

// Sync implements Target.
func (t *DockerTarget) Sync(ctx context.Context, roots []string, ops []agent.Op, logs io.Writer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for attempt := 0; ; attempt++ {
		s, err := t.session(ctx)
		if err != nil {
			return err
		}
		if s == nil {
			break
		}
		err = s.Apply(ctx, roots, ops)
		if errors.Is(err, agent.ErrClosed) && attempt == 0 && ctx.Err() == nil {
			// The container restarted or the agent died; every op is
			// idempotent, so reconnect and send the batch again.
			s.Close()
			t.sess = nil
			continue
		}
		return err
	}
	if !t.told {
		fmt.Fprintf(logs, "live update: not using the sync agent in %s (%s); copying with the Docker archive API\n", short(t.id), t.fallback)
		t.told = true
	}
	return t.copySync(ctx, ops, logs)
}

// copySync is the fallback: one exec of `rm -rf` for the removals, then one
// CopyToContainer of a tar holding the rest. The image needs rm for deletes.
func (t *DockerTarget) copySync(ctx context.Context, ops []agent.Op, logs io.Writer) error {
	var removes []string
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	n := 0
	for _, op := range ops {
		name := strings.TrimPrefix(op.Path, "/")
		h := &tar.Header{Name: name, ModTime: now, Mode: tarMode(op)}
		switch op.Kind {
		case agentwire.OpRemove:
			removes = append(removes, op.Path)
			continue
		case agentwire.OpWrite:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(op.Data))
		case agentwire.OpMkdir:
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
		case agentwire.OpSymlink:
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, op.Target, 0o777
		default:
			return fmt.Errorf("copy into %s: unknown op %s", short(t.id), op.Kind)
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", op.Path, err)
		}
		if _, err := tw.Write(op.Data); err != nil {
			return fmt.Errorf("tar %s: %w", op.Path, err)
		}
		n++
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar changes: %w", err)
	}
	if len(removes) > 0 {
		argv := append([]string{"rm", "-rf", "--"}, removes...)
		code, err := t.Exec(ctx, argv, logs)
		if err != nil {
			return fmt.Errorf("remove %d paths in %s: %w", len(removes), short(t.id), err)
		}
		if code != 0 {
			return fmt.Errorf("remove %d paths in %s: rm exited with code %d", len(removes), short(t.id), code)
		}
	}
	if n > 0 {
		if err := t.cli.CopyToContainer(ctx, t.id, "/", &buf, container.CopyToContainerOptions{AllowOverwriteDirWithFile: true}); err != nil {
			return fmt.Errorf("copy %d files into %s: %w", n, short(t.id), err)
		}
	}
	return nil
}

// tarMode converts Go's mode bits to the Unix bits tar headers carry.
func tarMode(op agent.Op) int64 {
	m := int64(op.Mode.Perm())
	if op.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if op.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if op.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// Exec implements Target: argv runs in the container through the exec API
// (no shell unless argv names one); stdout and stderr go to logs.
func (t *DockerTarget) Exec(ctx context.Context, argv []string, logs io.Writer) (int, error) {
	if logs == nil {
		logs = io.Discard
	}
	ex, err := t.cli.ContainerExecCreate(ctx, t.id, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, fmt.Errorf("create exec in %s: %w", short(t.id), err)
	}
	hj, err := t.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, fmt.Errorf("attach exec in %s: %w", short(t.id), err)
	}
	defer hj.Close()
	stop := context.AfterFunc(ctx, func() { hj.Close() })
	defer stop()
	if _, err := stdcopy.StdCopy(logs, logs, hj.Reader); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("read exec output in %s: %w", short(t.id), err)
	}
	// The stream ends when the process exits; the engine may record the
	// exit code a moment later.
	for {
		insp, err := t.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return 0, fmt.Errorf("inspect exec in %s: %w", short(t.id), err)
		}
		if !insp.Running {
			return insp.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Restart implements Target. In a container created supervised (its
// entrypoint starts with agent.Supervisor(), see compose.Supervise) the
// agent's supervisor restarts only the application process, through the
// held agent session, which survives it, as does the container (and its
// log stream). Otherwise, or when that fails, the container is restarted
// (the agent dies with it; the next Sync starts it again), and logs says
// why: once for a container that is not supervised, every time for a
// failure.
func (t *DockerTarget) Restart(ctx context.Context, logs io.Writer) error {
	if logs == nil {
		logs = io.Discard
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sup, err := t.supervision(ctx)
	if err != nil {
		return err
	}
	if sup.ok {
		err := t.restartProcess(ctx, sup.grace)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(logs, "restart_container(): restarting the process failed (%v); restarting the container instead\n", err)
	} else if !t.restartTold {
		fmt.Fprintf(logs, "restart_container(): %s; restarting the container (slower)\n", sup.why)
		t.restartTold = true
	}
	if t.sess != nil {
		t.sess.Close()
		t.sess = nil
	}
	if err := t.cli.ContainerRestart(ctx, t.id, container.StopOptions{Timeout: t.RestartTimeout}); err != nil {
		return fmt.Errorf("restart %s: %w", short(t.id), err)
	}
	return nil
}

// restartProcess asks the supervisor through the agent session, once more
// on a fresh session when the held one turns out to be dead. Callers hold
// t.mu.
func (t *DockerTarget) restartProcess(ctx context.Context, grace time.Duration) error {
	for attempt := 0; ; attempt++ {
		s, err := t.session(ctx)
		if err != nil {
			return err
		}
		if s == nil {
			return fmt.Errorf("the sync agent cannot run (%s)", t.fallback)
		}
		_, err = s.RestartProcess(ctx, grace)
		if errors.Is(err, agent.ErrClosed) && attempt == 0 && ctx.Err() == nil {
			s.Close()
			t.sess = nil
			continue
		}
		return err
	}
}

// supervisionInfo is what Restart needs to know about the container,
// inspected once.
type supervisionInfo struct {
	ok    bool
	why   string        // why not, when !ok
	grace time.Duration // the stop grace period; 0 for the default
}

// supervision inspects the container once. Callers hold t.mu.
func (t *DockerTarget) supervision(ctx context.Context) (supervisionInfo, error) {
	if t.sup != nil {
		return *t.sup, nil
	}
	c, err := t.cli.ContainerInspect(ctx, t.id)
	if err != nil {
		return supervisionInfo{}, fmt.Errorf("inspect %s: %w", short(t.id), err)
	}
	var info supervisionInfo
	switch {
	case t.NoAgent:
		info.why = "the sync agent is disabled"
	case c.Config == nil || !agent.IsSupervised(c.Config.Entrypoint):
		info.why = fmt.Sprintf("container %s was not created with loop's process supervisor", short(t.id))
	default:
		info.ok = true
	}
	switch {
	case t.RestartTimeout != nil:
		info.grace = time.Duration(*t.RestartTimeout) * time.Second
	case c.Config != nil && c.Config.StopTimeout != nil:
		info.grace = time.Duration(*c.Config.StopTimeout) * time.Second
	}
	t.sup = &info
	return info, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
