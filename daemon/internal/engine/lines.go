package engine

import (
	"bytes"
	"strings"
	"sync"
)

// lineWriter turns a byte stream into whole lines; a partial line waits for
// its newline. Safe for concurrent use (build output and container logs may
// share one resource log).
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	// Bound a line that never ends (a progress bar without newlines).
	if len(w.buf) > 64<<10 {
		w.emit(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
