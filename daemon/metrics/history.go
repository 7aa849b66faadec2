package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// History file names in the state directory. The current file is appended
// to; when it would grow past the size limit it becomes the rotated file
// (replacing the previous one), so history is bounded by twice the limit.
const (
	HistoryFile = "history.jsonl"
	RotatedFile = "history.1.jsonl"
)

// DefaultMaxBytes is the size at which the history file rotates: about
// 15,000 traces.
const DefaultMaxBytes = 4 << 20

// file is what the history writer needs of an *os.File (a test fakes a
// full disk with it).
type file interface {
	io.Writer
	io.ReaderAt
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

func openFile(path string) (file, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
}

// historyWriter appends lines to the history file. Only the Store's writer
// goroutine uses it. A failed write is cut back off the file so every line
// before it stays whole; if even that fails, the next line starts on a new
// line and readers skip the broken one.
type historyWriter struct {
	dir  string
	max  int64
	open func(path string) (file, error)

	f      file
	size   int64
	needNL bool // the file does not end with a newline (a torn write)
}

func (w *historyWriter) path() string { return filepath.Join(w.dir, HistoryFile) }

func (w *historyWriter) openCurrent() error {
	f, err := w.open(w.path())
	if err != nil {
		return fmt.Errorf("open timing history: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("open timing history: %w", err)
	}
	w.f, w.size, w.needNL = f, fi.Size(), false
	if w.size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, w.size-1); err == nil && last[0] != '\n' {
			w.needNL = true
		}
	}
	return nil
}

// append writes one line (ending in '\n'), rotating first when the file
// would pass the limit.
func (w *historyWriter) append(line []byte) error {
	if w.f == nil {
		if err := w.openCurrent(); err != nil {
			return err
		}
	}
	if w.size > 0 && w.size+int64(len(line)) > w.max {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	if w.needNL {
		line = append([]byte{'\n'}, line...)
	}
	n, err := w.f.Write(line)
	if err == nil {
		w.size += int64(n)
		w.needNL = false
		return nil
	}
	if n > 0 {
		if terr := w.f.Truncate(w.size); terr != nil {
			// Cannot cut the torn line: reopen next time, which starts a new line.
			_ = w.f.Close()
			w.f = nil
		}
	}
	return fmt.Errorf("append to timing history: %w", err)
}

func (w *historyWriter) rotate() error {
	_ = w.f.Close()
	w.f = nil
	if err := os.Rename(w.path(), filepath.Join(w.dir, RotatedFile)); err != nil {
		return fmt.Errorf("rotate timing history: %w", err)
	}
	return w.openCurrent()
}

func (w *historyWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// historyLine is a history line that is not a trace: a chain. (A trace's
// line is the api.Trace itself, as it has always been.)
type historyLine struct {
	Chain *api.Chain `json:"chain,omitempty"`
}

// History is what the history files hold.
type History struct {
	Traces []api.Trace
	Chains []api.Chain
}

// Summary summarizes the traces and chains at or after since.
func (h History) Summary(since time.Time) api.MetricsSummary {
	sum := Summarize(h.Traces, since)
	sum.Chains = SummarizeChains(h.Chains, since)
	return sum
}

// ReadHistory returns the traces in the history files of the state
// directory dir, oldest first, keeping those started at or after since
// (zero: all). Lines that do not parse (a write torn by a full disk) are
// skipped. Missing files are no error: there is no history yet.
func ReadHistory(dir string, since time.Time) ([]api.Trace, error) {
	h, err := ReadAll(dir, since)
	return h.Traces, err
}

// ReadAll is ReadHistory with the chains too (rooted at or after since).
func ReadAll(dir string, since time.Time) (History, error) {
	var out History
	for _, name := range []string{RotatedFile, HistoryFile} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return History{}, fmt.Errorf("read timing history: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var t struct {
				api.Trace
				historyLine
			}
			if json.Unmarshal(line, &t) != nil {
				continue
			}
			if c := t.Chain; c != nil {
				if c.End != "" && !c.Root.IsZero() && (since.IsZero() || !c.Root.Before(since)) {
					out.Chains = append(out.Chains, *c)
				}
				continue
			}
			if t.Resource == "" || t.Started.IsZero() {
				continue
			}
			if since.IsZero() || !t.Started.Before(since) {
				out.Traces = append(out.Traces, t.Trace)
			}
		}
		err = sc.Err()
		_ = f.Close()
		if err != nil {
			return History{}, fmt.Errorf("read timing history %s: %w", name, err)
		}
	}
	return out, nil
}
