package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// PodContainer names one container of a pod.
type PodContainer struct {
	Namespace, Pod, Container string
	// UID tells a pod from a later one of the same name, Instance a container
	// from itself restarted (the runtime's container ID).
	UID, Instance string
	// Arch is the (Go-named) architecture of the pod's node; "" means this
	// machine's.
	Arch string
	// Supervised says the container's command runs under the agent's
	// supervisor (it starts with Supervisor()): the agent is at Path already, from the pod's
	// init container, and the process can be restarted in place.
	Supervised bool
	// Grace is how long the process may take to stop on a restart (the pod's
	// termination grace period); 0 is the supervisor's default.
	Grace time.Duration
}

func (p PodContainer) String() string { return p.Namespace + "/" + p.Pod + "/" + p.Container }

// In a pod the agent lives in $TMPDIR (else /tmp): pods often run as a user
// who may not write to /, and the exec API has no archive call that could
// put it anywhere else. Both scripts need sh (and the install head, chmod
// and mv), as Tilt's live update into pods needs tar. The install reads
// exactly the binary's size rather than up to the end of stdin: not every
// kubelet passes the end on (kwok does not). A failed install still reads the
// binary to its end: a real kubelet ends the exec only once its stdin is
// drained, so a script that gave up at a read-only /tmp without reading would
// leave the exec, and loop, waiting.
const (
	kubeStartScript   = `exec "${TMPDIR:-/tmp}/.loop/agent"`
	kubeInstallScript = `d="${TMPDIR:-/tmp}/.loop"; if mkdir -p "$d" && head -c %[1]d >"$d/agent.$$" && chmod 755 "$d/agent.$$" && mv -f "$d/agent.$$" "$d/agent"; then exit 0; fi; rm -f "$d/agent.$$" 2>/dev/null; head -c %[1]d >/dev/null; exit 1`
)

// Kube runs commands in pods' containers through the Kubernetes exec API,
// over WebSocket, or SPDY when the server does not take WebSocket (as
// kubectl does).
type Kube struct {
	config *rest.Config
	client rest.Interface
}

// NewKube returns an exec client for the cluster of cfg.
func NewKube(cfg *rest.Config) (*Kube, error) {
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("make exec client: %w", err)
	}
	return &Kube{config: cfg, client: core.RESTClient()}, nil
}

func (k *Kube) executor(pc PodContainer, argv []string, stdin bool) (remotecommand.Executor, error) {
	req := k.client.Post().Resource("pods").Namespace(pc.Namespace).Name(pc.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: pc.Container, Command: argv, Stdin: stdin, Stdout: true, Stderr: true},
			scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(k.config, "GET", req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", pc, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(k.config, "POST", req.URL())
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", pc, err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", pc, err)
	}
	return ex, nil
}

// Exec runs argv in the container to its end, with stdin when not nil, and
// returns its exit code. An error means it could not be run or followed.
func (k *Kube) Exec(ctx context.Context, pc PodContainer, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	ex, err := k.executor(pc, argv, stdin != nil)
	if err != nil {
		return 0, err
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	// The executor copies stdout and stderr on goroutines of their own; callers
	// pass one log writer for both.
	var mu sync.Mutex
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin,
		Stdout: &lockedWriter{mu: &mu, w: stdout}, Stderr: &lockedWriter{mu: &mu, w: stderr}})
	var ce utilexec.CodeExitError
	if errors.As(err, &ce) {
		return ce.Code, nil
	}
	if err != nil {
		return 0, fmt.Errorf("exec %s in %s: %w", argv[0], pc, err)
	}
	return 0, nil
}

// StartKube executes the installed agent in the pod's container, keeps the
// exec stream and checks it answers; like Start for a Docker container. In a
// supervised container it runs the supervisor's agent (Path), which needs no
// shell.
func StartKube(ctx context.Context, k *Kube, pc PodContainer) (*Session, error) {
	argv := []string{"sh", "-c", kubeStartScript}
	if pc.Supervised {
		argv = []string{Path}
	}
	ex, err := k.executor(pc, argv, true)
	if err != nil {
		return nil, err
	}
	out := &output{}
	ks := openKubeStream(ex, out)
	s := newSession(pc.String(), ks, out)
	if said, err := s.greet(ctx); err != nil {
		// sh reports a missing agent as exit code 127; a runtime that
		// cannot run sh says "executable file not found".
		var ce utilexec.CodeExitError
		if end := ks.end(); errors.As(end, &ce) && (ce.Code == 126 || ce.Code == 127) ||
			end != nil && strings.Contains(end.Error(), "executable file not found") {
			return nil, fmt.Errorf("start the sync agent in %s: %w: %w %s", pc, ErrNotInstalled, end, said)
		}
		return nil, fmt.Errorf("start the sync agent in %s: %w", pc, err)
	}
	return s, nil
}

// ConnectKube returns a session with the current agent in the pod's
// container, installing it first when it is missing or stale; like Connect.
func ConnectKube(ctx context.Context, k *Kube, pc PodContainer) (*Session, error) {
	arch := pc.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	bin, err := Binary(arch)
	if err != nil {
		return nil, err
	}
	if pc.Supervised {
		// The init container put loop's agent next to the supervisor; one of
		// another loop version is replaced in $TMPDIR as in any container.
		s, err := StartKube(ctx, k, pc)
		if err == nil && s.ExeSHA256 == sha256Hex(bin) {
			return s, nil
		}
		if err == nil {
			s.Close()
		}
		pc.Supervised = false
	}
	return connectWith(ctx, bin,
		func() (*Session, error) { return StartKube(ctx, k, pc) },
		func() error {
			var stderr bytes.Buffer
			code, err := k.Exec(ctx, pc, []string{"sh", "-c", fmt.Sprintf(kubeInstallScript, len(bin))}, bytes.NewReader(bin), nil, &stderr)
			if err == nil && code != 0 {
				err = fmt.Errorf("exit code %d: %s", code, strings.TrimSpace(stderr.String()))
			}
			if err != nil {
				return fmt.Errorf("install the sync agent in %s: %w", pc, err)
			}
			return nil
		})
}

// kubeStream is a held Kubernetes exec: the agent's stdin and stdout as
// pipes into the executor, which one goroutine runs until the exec ends.
type kubeStream struct {
	stdin  *io.PipeWriter
	stdout *io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
	err    error // how the exec ended; set before done closes

	mu    sync.Mutex
	timer *time.Timer // the pending deadline
}

func openKubeStream(ex remotecommand.Executor, out *output) *kubeStream {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	ks := &kubeStream{stdin: inW, stdout: outR, cancel: cancel, done: make(chan struct{})}
	out.r = outR
	// Owned by the stream: ends when the exec does (the agent exits, or
	// Close cancels it); Close waits for it.
	go func() {
		defer close(ks.done)
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: inR, Stdout: outW, Stderr: out})
		ks.err = err
		if err == nil {
			err = io.EOF
		}
		_ = outW.CloseWithError(err)
		_ = inR.CloseWithError(err)
	}()
	return ks
}

func (ks *kubeStream) Write(p []byte) (int, error) { return ks.stdin.Write(p) }
func (ks *kubeStream) CloseWrite() error           { return ks.stdin.Close() }

// Close ends the exec and waits for it.
func (ks *kubeStream) Close() error {
	ks.cancel()
	_ = ks.stdin.Close()
	_ = ks.stdout.Close()
	<-ks.done
	return ks.deadline(time.Time{}, false)
}

// end returns how the exec ended, once it has.
func (ks *kubeStream) end() error {
	<-ks.done
	return ks.err
}

// SetDeadline interrupts blocked reads and writes when t passes. Pipes
// cannot take back an interruption: the session is dead after one, as it is
// after any error.
func (ks *kubeStream) SetDeadline(t time.Time) error { return ks.deadline(t, true) }

// SetReadDeadline interrupts blocked reads when t passes.
func (ks *kubeStream) SetReadDeadline(t time.Time) error { return ks.deadline(t, false) }

func (ks *kubeStream) deadline(t time.Time, writes bool) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.timer != nil {
		ks.timer.Stop()
		ks.timer = nil
	}
	if t.IsZero() {
		return nil
	}
	ks.timer = time.AfterFunc(time.Until(t), func() {
		_ = ks.stdout.CloseWithError(os.ErrDeadlineExceeded)
		if writes {
			_ = ks.stdin.CloseWithError(os.ErrDeadlineExceeded)
		}
	})
	return nil
}

// lockedWriter serialises writes that share mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
