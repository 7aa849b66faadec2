package compose

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// logsOverlap is how far before the newest timestamp shown a second read of
// a log starts: the engine stamps stdout and stderr lines in two goroutines,
// so a log's order and its timestamps' order can differ a little.
const logsOverlap = time.Second

// Logs follows the container's stdout and stderr from since (from the start
// when it is zero) and writes them to w one whole line at a time; a final
// unterminated line is completed with a newline. The engine does not keep
// the relative order of stdout and stderr lines written close together.
//
// A follow ends when the engine closes the container's log, and dockerd 20.10
// does not read what reached the log after the follower's last read: the
// lines a crashing process writes last, nearly always a last line without
// newline. So once the follow has ended and the container is seen stopped,
// Logs reads the log once more, without follow, and passes on what the
// follow had not.
//
// Logs returns nil when the container stops or is removed, or ctx is done,
// and writes nothing after it returns.
func (c *Controller) Logs(ctx context.Context, containerID string, since time.Time, w io.Writer) error {
	insp, err := c.cli.ContainerInspect(ctx, containerID)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", shortID(containerID), err)
	}
	// One lineWriter for both streams: the frames are read in one goroutine,
	// and each holds whole lines of one stream in practice.
	lw := &lineWriter{w: w}
	r := &logReader{tty: insp.Config != nil && insp.Config.Tty, since: since, out: lw}
	var started string
	if insp.State != nil {
		started = insp.State.StartedAt
	}
	err = c.readLogs(ctx, containerID, started, r)
	if ferr := lw.flush(); err == nil {
		err = ferr
	}
	if err != nil && ctx.Err() == nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("logs of %s: %w", shortID(containerID), err)
	}
	return nil
}

// readLogs follows the log of the container started at started, and reads it
// once more without follow when the follow has ended and the container has
// stopped or restarted.
func (c *Controller) readLogs(ctx context.Context, id, started string, r *logReader) error {
	follow := true
	for {
		if err := r.read(ctx, c.cli, id, follow); err != nil || !follow || ctx.Err() != nil {
			return err
		}
		insp, err := c.cli.ContainerInspect(ctx, id)
		if err != nil {
			return fmt.Errorf("inspect after the follow: %w", err)
		}
		st := insp.State
		// Still running: the engine closes the log before it marks the
		// container stopped, or the follow ended early. Follow again.
		follow = st != nil && st.Running && !st.Restarting && st.StartedAt == started
		if follow {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(c.pollInterval()):
			}
		}
	}
}

func (c *Controller) pollInterval() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return DefaultPollInterval
}

// logReader reads a container's log, more than once if need be, and passes
// each part of it on once.
type logReader struct {
	tty   bool
	since time.Time
	out   io.Writer

	// A terminal's log is a byte stream without message boundaries: a second
	// read skips the bytes shown. (A log the engine rotated in between is
	// shorter, and the skip then drops part of what is left.)
	shown int64
	// Other logs come in stamped messages: a second read starts shortly
	// before the newest stamp shown and skips the messages shown since.
	newest time.Time
	stamps []time.Time // of the messages shown, back to newest-logsOverlap
}

// read reads the log, following it when follow is set, from where the reads
// before stopped.
func (r *logReader) read(ctx context.Context, cli DockerAPI, id string, follow bool) error {
	from, skip := r.resume()
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Timestamps: !r.tty}
	if !from.IsZero() {
		opts.Since = strconv.FormatInt(from.Unix(), 10) + "." + fmt.Sprintf("%09d", from.Nanosecond())
	}
	rc, err := cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return err
	}
	defer rc.Close()
	if r.tty {
		return r.copyRaw(rc, skip)
	}
	return r.copyFrames(rc, skip)
}

// resume returns where the next read starts and how much of it was shown.
func (r *logReader) resume() (from time.Time, skip int64) {
	if r.tty || r.newest.IsZero() {
		return r.since, r.shown
	}
	from = r.newest.Add(-logsOverlap)
	if from.Before(r.since) {
		from = r.since
	}
	for _, s := range r.stamps {
		if !s.Before(from) {
			skip++
		}
	}
	return from, skip
}

func (r *logReader) copyRaw(rd io.Reader, skip int64) error {
	if _, err := io.CopyN(io.Discard, rd, skip); err != nil {
		return streamEnd(err)
	}
	n, err := io.Copy(r.out, rd)
	r.shown += n
	return err
}

// copyFrames passes on the messages of a multiplexed log stream read with
// timestamps, after skipping the first skip of them.
func (r *logReader) copyFrames(rd io.Reader, skip int64) error {
	var (
		hdr [8]byte // stream, 3 unused bytes, big-endian payload size
		buf []byte
	)
	for {
		if _, err := io.ReadFull(rd, hdr[:]); err != nil {
			return streamEnd(err)
		}
		size := int(binary.BigEndian.Uint32(hdr[4:]))
		buf = slices.Grow(buf[:0], size)[:size]
		if _, err := io.ReadFull(rd, buf); err != nil {
			return streamEnd(err)
		}
		switch stdcopy.StdType(hdr[0]) {
		case stdcopy.Stdin, stdcopy.Stdout, stdcopy.Stderr:
		case stdcopy.Systemerr:
			return fmt.Errorf("engine: %s", bytes.TrimSpace(buf))
		default:
			return fmt.Errorf("read log frame: unknown stream %d", hdr[0])
		}
		stamp, line, ok := bytes.Cut(buf, []byte{' '})
		ts, err := time.Parse(time.RFC3339Nano, string(stamp))
		if !ok || err != nil {
			return fmt.Errorf("read log frame: no timestamp: %q", buf[:min(len(buf), 40)])
		}
		if skip > 0 {
			skip--
			continue
		}
		r.note(ts)
		if _, err := r.out.Write(line); err != nil {
			return err
		}
	}
}

// note records the stamp of a message shown.
func (r *logReader) note(ts time.Time) {
	if ts.After(r.newest) {
		r.newest = ts
	}
	old := r.newest.Add(-logsOverlap)
	i := 0
	for i < len(r.stamps) && r.stamps[i].Before(old) {
		i++
	}
	r.stamps = append(r.stamps[i:], ts)
}

// streamEnd maps the end of a log stream, inside a frame too (a message not
// passed on is read again), to nil.
func streamEnd(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// lineWriter passes on only complete lines, keeping a partial one until its
// end arrives.
type lineWriter struct {
	w   io.Writer
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		if _, err := l.w.Write(l.buf[:i+1]); err != nil {
			return 0, err
		}
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

func (l *lineWriter) flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(append(l.buf, '\n'))
	l.buf = nil
	return err
}
