package localres

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

// maxLine is the longest line written as one; longer lines are split into
// pieces of this size, each written as a line of its own.
const maxLine = 64 << 10

// lineWriter serialises whole-line writes from every stream of every command
// of a resource onto one io.Writer.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) writeLine(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A failing log sink must not stop the command; the line is dropped.
	_, _ = l.w.Write(b)
}

// copyLines reads r until EOF or error and writes each line, newline
// included, as one write. A last line without a newline gets one.
func copyLines(r io.Reader, out *lineWriter) {
	br := bufio.NewReaderSize(r, maxLine)
	var buf []byte
	split := false // the last write was a piece of a longer line
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case len(chunk) == 0:
		case split && len(chunk) == 1 && chunk[0] == '\n':
			// The newline ending a line that was exactly split: already written.
		case chunk[len(chunk)-1] == '\n':
			out.writeLine(chunk)
		default:
			buf = append(append(buf[:0], chunk...), '\n')
			out.writeLine(buf)
		}
		split = errors.Is(err, bufio.ErrBufferFull)
		if split {
			continue
		}
		if err != nil {
			return
		}
	}
}
