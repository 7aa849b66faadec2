package liveupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/loop-dev/loop/daemon/internal/agent"
)

// KubeTarget applies updates to every running container, in any pod, that runs one
// image: the containers are found again on each update (pods come and go with
// rollouts), and each gets loop's sync agent over a held Kubernetes exec stream,
// started on first use and kept while its pod lives. A container that appears later
// (a new pod, or a restart, which starts it from the image again) first gets every
// file synced through the target before the update's own. Run steps run through exec
// in each container. Safe for concurrent use.
type KubeTarget struct {
	k     *agent.Kube
	find  func(ctx context.Context) ([]agent.PodContainer, error)
	image string
	stop  func() // ends what find uses; once, on Close

	mu   sync.Mutex // serialises Sync and Connect; guards the fields below
	smu  sync.Mutex // guards sess, which each's goroutines share
	sess map[agent.PodContainer]*agent.Session
	// known are the containers that have every file synced so far; seeded says
	// the first list of containers (which start from the deployed image) was taken.
	known  map[agent.PodContainer]bool
	seeded bool
	hist   history

	// Restarted, when set, is called after a container's process restarted in
	// place, with when the restart was asked for (the port forwards end their
	// connections to the stopped process).
	Restarted func(pc agent.PodContainer, asked time.Time)
}

// HistoryMax bounds the file data a KubeTarget keeps to bring a later container up
// to date; beyond it such a container fails the update, and the next one rebuilds.
const HistoryMax = 64 << 20

// history is the latest op per path synced through a target, in the order a replay
// must apply them (a path written again moves to the end, after a removal of its
// directory).
type history struct {
	ops   []agent.Op     // Path "" marks a superseded slot
	idx   map[string]int // path → slot
	roots map[string]bool
	bytes int
	lost  bool // more than its limit: dropped
	max   int  // the limit in bytes; 0 is HistoryMax (a test sets less)
}

func (h *history) limit() int {
	if h.max > 0 {
		return h.max
	}
	return HistoryMax
}

func (h *history) add(roots []string, ops []agent.Op) {
	if h.lost {
		return
	}
	if h.idx == nil {
		h.idx, h.roots = map[string]int{}, map[string]bool{}
	}
	for _, r := range roots {
		h.roots[r] = true
	}
	for _, op := range ops {
		if i, ok := h.idx[op.Path]; ok {
			h.bytes -= len(h.ops[i].Data)
			h.ops[i] = agent.Op{}
		}
		h.idx[op.Path] = len(h.ops)
		h.ops = append(h.ops, op)
		h.bytes += len(op.Data)
	}
	if h.bytes > h.limit() {
		*h = history{lost: true, max: h.max}
		return
	}
	if len(h.ops) > 64 && len(h.ops) > 2*len(h.idx) {
		live := h.ops[:0]
		for _, op := range h.ops {
			if op.Path != "" {
				h.idx[op.Path] = len(live)
				live = append(live, op)
			}
		}
		clear(h.ops[len(live):])
		h.ops = live
	}
}

// replay returns what brings a new container up to date.
func (h *history) replay() ([]string, []agent.Op) {
	var ops []agent.Op
	for _, op := range h.ops {
		if op.Path != "" {
			ops = append(ops, op)
		}
	}
	roots := make([]string, 0, len(h.roots))
	for r := range h.roots {
		roots = append(roots, r)
	}
	sort.Strings(roots)
	return roots, ops
}

// NewKubeTarget returns a target for the containers find lists, which run image;
// Close calls stop (when not nil) once.
func NewKubeTarget(k *agent.Kube, image string, find func(ctx context.Context) ([]agent.PodContainer, error), stop func()) *KubeTarget {
	return &KubeTarget{k: k, find: find, image: image, stop: stop, sess: map[agent.PodContainer]*agent.Session{}, known: map[agent.PodContainer]bool{}}
}

// ErrRestartInPod refuses restart_container() in a pod whose container does not run
// under loop's supervisor: restarting the container would start it from its image
// again, without the synced files.
var ErrRestartInPod = errors.New("restart_container() cannot restart this pod's process in place (it does not run under loop's supervisor), and a restarted container would start from its image again, losing the synced files; restart the process with a run() step or let the change rebuild (fall_back_on)")

// Connect starts the agent in every container now, off the change path.
func (t *KubeTarget) Connect(ctx context.Context) error {
	return t.eachRunning(ctx, func(ctx context.Context, pc agent.PodContainer) error {
		_, err := t.session(ctx, pc)
		return err
	})
}

// eachRunning runs f for every running container at once, holding t.mu, and
// joins the errors.
func (t *KubeTarget) eachRunning(ctx context.Context, f func(context.Context, agent.PodContainer) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	pcs, err := t.containers(ctx)
	if err != nil {
		return err
	}
	return t.each(ctx, pcs, f)
}

// Close ends every agent session, and what find uses.
func (t *KubeTarget) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.smu.Lock()
	for pc, s := range t.sess {
		s.Close()
		delete(t.sess, pc)
	}
	t.smu.Unlock()
	if t.stop != nil {
		t.stop()
		t.stop = nil
	}
}

// containers lists the running containers and ends the sessions of those gone.
// Callers hold t.mu.
func (t *KubeTarget) containers(ctx context.Context) ([]agent.PodContainer, error) {
	pcs, err := t.find(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the pods running %s: %w", t.image, err)
	}
	if len(pcs) == 0 {
		return nil, fmt.Errorf("no running pod runs %s", t.image)
	}
	live := map[agent.PodContainer]bool{}
	for _, pc := range pcs {
		live[pc] = true
		if !t.seeded {
			t.known[pc] = true
		}
	}
	t.seeded = true
	for pc := range t.known {
		if !live[pc] {
			delete(t.known, pc)
		}
	}
	t.smu.Lock()
	defer t.smu.Unlock()
	for pc, s := range t.sess {
		if !live[pc] {
			s.Close()
			delete(t.sess, pc)
		}
	}
	return pcs, nil
}

// session returns the container's live session, connecting when there is none.
// Callers hold t.mu.
func (t *KubeTarget) session(ctx context.Context, pc agent.PodContainer) (*agent.Session, error) {
	if s := t.get(pc); s != nil {
		return s, nil
	}
	s, err := agent.ConnectKube(ctx, t.k, pc)
	if err != nil {
		if errors.Is(err, agent.ErrNoBinary) || errors.Is(err, agent.ErrNotInstalled) {
			return nil, fmt.Errorf("loop's sync agent could not be started in %s (it needs sh, head, chmod and mv in the image and a writable $TMPDIR or /tmp): %w", pc, err)
		}
		return nil, err
	}
	t.put(pc, s)
	return s, nil
}

func (t *KubeTarget) get(pc agent.PodContainer) *agent.Session {
	t.smu.Lock()
	defer t.smu.Unlock()
	return t.sess[pc]
}

func (t *KubeTarget) put(pc agent.PodContainer, s *agent.Session) {
	t.smu.Lock()
	defer t.smu.Unlock()
	if s == nil {
		delete(t.sess, pc)
		return
	}
	t.sess[pc] = s
}

// each runs f for every container at once and joins the errors.
func (t *KubeTarget) each(ctx context.Context, pcs []agent.PodContainer, f func(context.Context, agent.PodContainer) error) error {
	errs := make([]error, len(pcs))
	var wg sync.WaitGroup
	for i, pc := range pcs {
		wg.Add(1)
		go func() { // owned by each: it waits for all
			defer wg.Done()
			errs[i] = f(ctx, pc)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Sync implements Target: every container gets the batch.
func (t *KubeTarget) Sync(ctx context.Context, roots []string, ops []agent.Op, _ io.Writer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	pcs, err := t.containers(ctx)
	if err != nil {
		return err
	}
	t.hist.add(roots, ops)
	var fresh []agent.PodContainer
	for _, pc := range pcs {
		if !t.known[pc] {
			fresh = append(fresh, pc)
		}
	}
	var hroots []string
	var hops []agent.Op
	if len(fresh) > 0 {
		hroots, hops = t.hist.replay()
	}
	err = t.each(ctx, pcs, func(ctx context.Context, pc agent.PodContainer) error {
		if !t.known[pc] {
			// Started after the deploy (or restarted): it has the image's files.
			if t.hist.lost {
				return fmt.Errorf("%s started after the deploy, and the files synced since are more than loop keeps to replay (%d MB)", pc, t.hist.limit()>>20)
			}
			return t.apply(ctx, pc, hroots, hops)
		}
		return t.apply(ctx, pc, roots, ops)
	})
	for _, pc := range fresh {
		t.known[pc] = true // even on an error: a failed update rebuilds next
	}
	return err
}

// apply sends a batch to one container, once more on a fresh session when the held
// one turns out to be dead.
func (t *KubeTarget) apply(ctx context.Context, pc agent.PodContainer, roots []string, ops []agent.Op) error {
	// Every op is idempotent: sent again on a fresh stream when the held one broke.
	err := t.withSession(ctx, pc, func(s *agent.Session) error { return s.Apply(ctx, roots, ops) })
	if err != nil {
		return fmt.Errorf("%s: %w", pc, err)
	}
	return nil
}

// withSession calls f with the container's session, once more on a fresh session
// when the held one turns out to be dead; f must be safe to repeat.
func (t *KubeTarget) withSession(ctx context.Context, pc agent.PodContainer, f func(*agent.Session) error) error {
	for attempt := 0; ; attempt++ {
		s, err := t.session(ctx, pc)
		if err != nil {
			return err
		}
		err = f(s)
		if errors.Is(err, agent.ErrClosed) && attempt == 0 && ctx.Err() == nil {
			s.Close()
			t.put(pc, nil)
			continue
		}
		return err
	}
}

// Exec implements Target: argv runs in each container in turn (no shell unless argv
// names one), output to logs; the first non-zero exit code is returned.
func (t *KubeTarget) Exec(ctx context.Context, argv []string, logs io.Writer) (int, error) {
	if logs == nil {
		logs = io.Discard
	}
	t.mu.Lock()
	pcs, err := t.containers(ctx)
	t.mu.Unlock()
	if err != nil {
		return 0, err
	}
	for _, pc := range pcs {
		code, err := t.k.Exec(ctx, pc, argv, nil, logs, logs)
		if err != nil {
			return 0, err
		}
		if code != 0 {
			if len(pcs) > 1 {
				fmt.Fprintf(logs, "%s in %s exited with code %d\n", strings.Join(argv, " "), pc, code)
			}
			return code, nil
		}
	}
	return 0, nil
}

// Restart implements Target: each container's process restarts in place under
// the agent's supervisor (same pod, same container and files, a new process),
// over the held session. A container without the supervisor refuses
// (ErrRestartInPod).
func (t *KubeTarget) Restart(ctx context.Context, _ io.Writer) error {
	return t.eachRunning(ctx, func(ctx context.Context, pc agent.PodContainer) error {
		if !pc.Supervised {
			return fmt.Errorf("%s: %w", pc, ErrRestartInPod)
		}
		// A restart request whose answer was lost asks again: at worst the
		// process restarts twice.
		asked := time.Now()
		err := t.withSession(ctx, pc, func(s *agent.Session) error {
			_, err := s.RestartProcess(ctx, pc.Grace)
			return err
		})
		if errors.Is(err, agent.ErrNoSupervisor) {
			return fmt.Errorf("%s: %w: %w", pc, ErrRestartInPod, err)
		}
		if err == nil && t.Restarted != nil {
			t.Restarted(pc, asked)
		}
		return err
	})
}
