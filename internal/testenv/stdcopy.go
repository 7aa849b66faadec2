package testenv

import (
	"io"

	"github.com/docker/docker/pkg/stdcopy"
)

// stdcopyDemux merges a multiplexed exec stream into one writer.
func stdcopyDemux(w io.Writer, r io.Reader) (int64, error) {
	return stdcopy.StdCopy(w, w, r)
}
