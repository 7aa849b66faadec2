package watch

import (
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Op is what happened to a path; values are bit flags.
type Op uint8

const (
	// Create: the path appeared (created, or moved in: an atomic save's rename
	// onto the target reports Create for the target).
	Create Op = 1 << iota
	// Write: the file's contents changed.
	Write
	// Remove: the path was deleted.
	Remove
	// Rename: the path was moved away; it no longer exists at Path.
	Rename
	// Chmod: the path's attributes changed.
	Chmod
)

// Has reports whether o includes any of the bits of x.
func (o Op) Has(x Op) bool { return o&x != 0 }

func (o Op) String() string {
	if o == 0 {
		return "none"
	}
	var parts []string
	for _, n := range []struct {
		op   Op
		name string
	}{{Create, "create"}, {Write, "write"}, {Remove, "remove"}, {Rename, "rename"}, {Chmod, "chmod"}} {
		if o.Has(n.op) {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, "|")
}

// Event is one change to one path.
type Event struct {
	Path string // absolute
	Op   Op
	// Time is when the watcher read the event from the kernel (for events it
	// derived from a directory scan, when it read the event that caused the
	// scan), before any batching.
	Time time.Time
	// Dir and Gone are what the watcher saw of the path when it read the event:
	// a directory (or, when gone, one that was), and no longer there. Merged
	// events keep the latest, so consumers decide without a stat of their own.
	Dir  bool
	Gone bool
	// Barrier, when non-zero, makes this no file event but the barrier of
	// that token (see Watcher.Barrier): every event read before it precedes
	// it. Path is empty.
	Barrier uint64
}

func opFrom(o fsnotify.Op) Op {
	var op Op
	if o.Has(fsnotify.Create) {
		op |= Create
	}
	if o.Has(fsnotify.Write) {
		op |= Write
	}
	if o.Has(fsnotify.Remove) {
		op |= Remove
	}
	if o.Has(fsnotify.Rename) {
		op |= Rename
	}
	if o.Has(fsnotify.Chmod) {
		op |= Chmod
	}
	return op
}
