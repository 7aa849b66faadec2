package tiltfile

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/loop-dev/loop/daemon/model"
)

// Blob is Tilt's blob: text produced by local(), read_file(), helm(), ...
// str(blob) is its text; string methods (strip, split, ...) work on it
// directly, as they do in Tilt Tiltfiles.
type Blob struct {
	text string
	// rendered is set on the output of helm() and kustomize(): k8s_yaml
	// keeps the render's inputs watched.
	rendered *rendered
}

var (
	_ starlark.HasAttrs  = (*Blob)(nil)
	_ starlark.HasBinary = (*Blob)(nil)
)

// NewBlob returns a blob holding text.
func NewBlob(text string) *Blob { return &Blob{text: text} }

// Text is the blob's contents.
func (b *Blob) Text() string          { return b.text }
func (b *Blob) String() string        { return b.text }
func (b *Blob) Type() string          { return "blob" }
func (b *Blob) Freeze()               {}
func (b *Blob) Truth() starlark.Bool  { return len(b.text) > 0 }
func (b *Blob) Hash() (uint32, error) { return starlark.String(b.text).Hash() }

// MarshalJSON lets encode_json write a blob as a string.
func (b *Blob) MarshalJSON() ([]byte, error) { return json.Marshal(b.text) }

// Attr exposes the string methods of the blob's text.
func (b *Blob) Attr(name string) (starlark.Value, error) {
	return starlark.String(b.text).Attr(name)
}

// AttrNames lists the string methods.
func (b *Blob) AttrNames() []string { return starlark.String(b.text).AttrNames() }

// Binary concatenates a blob with a string or another blob.
func (b *Blob) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	var other string
	switch y := y.(type) {
	case starlark.String:
		other = string(y)
	case *Blob:
		other = y.text
	default:
		return nil, nil
	}
	if op != syntax.PLUS {
		return nil, nil
	}
	if side == starlark.Left {
		return NewBlob(b.text + other), nil
	}
	return NewBlob(other + b.text), nil
}

// triggerModeValue is TRIGGER_MODE_AUTO / TRIGGER_MODE_MANUAL.
type triggerModeValue model.TriggerMode

func (t triggerModeValue) String() string {
	if t == triggerModeValue(model.TriggerManual) {
		return "TRIGGER_MODE_MANUAL"
	}
	return "TRIGGER_MODE_AUTO"
}
func (t triggerModeValue) Type() string          { return "trigger_mode" }
func (t triggerModeValue) Freeze()               {}
func (t triggerModeValue) Truth() starlark.Bool  { return true }
func (t triggerModeValue) Hash() (uint32, error) { return starlark.String(t).Hash() }

// stepKind names a live_update step.
type stepKind string

const (
	stepFallBackOn  stepKind = "fall_back_on"
	stepInitialSync stepKind = "initial_sync"
	stepSync        stepKind = "sync"
	stepRun         stepKind = "run"
	stepRestart     stepKind = "restart_container"
)

// liveUpdateStep is the value of sync(), run(), restart_container(),
// fall_back_on() and initial_sync().
type liveUpdateStep struct {
	kind       stepKind
	sync       model.Sync
	run        model.Run
	fallBackOn []string
	pos        model.Position
}

// String is Tilt's text for the step: extensions parse it (file_sync_only
// splits str(sync(...)) on quotes to get the paths back).
func (s *liveUpdateStep) String() string {
	switch s.kind {
	case stepSync:
		return fmt.Sprintf("sync step: '%s'->'%s'", s.sync.LocalPath, s.sync.ContainerPath)
	case stepRun:
		cmd := strings.Join(s.run.Cmd.Argv, " ")
		if s.run.Cmd.Shell && len(s.run.Cmd.Argv) == 3 {
			cmd = s.run.Cmd.Argv[2]
		}
		out := "run step: " + strconv.Quote(cmd)
		if len(s.run.Triggers) > 0 {
			out += fmt.Sprintf(" (triggers: %s)", strings.Join(s.run.Triggers, "; "))
		}
		return out
	case stepFallBackOn:
		return fmt.Sprintf("fall_back_on step: %v", s.fallBackOn)
	case stepRestart:
		return "restart_container step"
	}
	return string(s.kind) + "()"
}
func (s *liveUpdateStep) Type() string          { return "live_update_" + string(s.kind) + "_step" }
func (s *liveUpdateStep) Freeze()               {}
func (s *liveUpdateStep) Truth() starlark.Bool  { return true }
func (s *liveUpdateStep) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: %s", s.Type()) }

// portForwardValue is the value of port_forward().
type portForwardValue struct{ pf model.PortForward }

func (p portForwardValue) String() string {
	return fmt.Sprintf("port_forward(%d, %d)", p.pf.LocalPort, p.pf.ContainerPort)
}
func (p portForwardValue) Type() string          { return "port_forward" }
func (p portForwardValue) Freeze()               {}
func (p portForwardValue) Truth() starlark.Bool  { return true }
func (p portForwardValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: port_forward") }

// linkValue is the value of link(): .url and .name, as in Tilt.
type linkValue struct{ link model.Link }

var _ starlark.HasAttrs = linkValue{}

func (l linkValue) AttrNames() []string { return []string{"name", "url"} }
func (l linkValue) Attr(name string) (starlark.Value, error) {
	switch name {
	case "url":
		return starlark.String(l.link.URL), nil
	case "name":
		return starlark.String(l.link.Name), nil
	}
	return nil, nil
}

func (l linkValue) String() string        { return fmt.Sprintf("link(%q)", l.link.URL) }
func (l linkValue) Type() string          { return "link" }
func (l linkValue) Freeze()               {}
func (l linkValue) Truth() starlark.Bool  { return true }
func (l linkValue) Hash() (uint32, error) { return starlark.String(l.link.URL).Hash() }

// probeValue is the value of probe().
type probeValue struct{ probe *model.Probe }

func (p probeValue) String() string        { return "probe()" }
func (p probeValue) Type() string          { return "probe" }
func (p probeValue) Freeze()               {}
func (p probeValue) Truth() starlark.Bool  { return true }
func (p probeValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: probe") }

// actionValue is the value of exec_action(), http_get_action() and
// tcp_socket_action(); exactly one field is set.
type actionValue struct {
	exec *model.ExecAction
	http *model.HTTPGetAction
	tcp  *model.TCPSocketAction
}

func (a actionValue) String() string {
	switch {
	case a.exec != nil:
		return "exec_action()"
	case a.http != nil:
		return "http_get_action()"
	}
	return "tcp_socket_action()"
}
func (a actionValue) Type() string {
	switch {
	case a.exec != nil:
		return "exec_action"
	case a.http != nil:
		return "http_get_action"
	}
	return "tcp_socket_action"
}
func (a actionValue) Freeze()               {}
func (a actionValue) Truth() starlark.Bool  { return true }
func (a actionValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: %s", a.Type()) }
