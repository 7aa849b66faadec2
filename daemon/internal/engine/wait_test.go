package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// TestWaitCoversEveryEarlierWrite: a wait called right after a write
// returns only once the update that carries the write is done, with its
// change ID and paths; many rounds, none misses its write.
func TestWaitCoversEveryEarlierWrite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	// Each update records the contents of the file when it ran.
	seen := make(chan string, 1000)
	p := newProjectHook(t, ModeUp, func(_ string, j Job) Outcome {
		if b, err := os.ReadFile(filepath.Join(src, "f.txt")); err == nil {
			seen <- string(b)
		}
		return Outcome{Update: api.Update{Kind: api.UpdateLocal, Started: j.Started, Ready: time.Now()}}
	}, fakeDef{name: "app", dir: src})
	p.waitPhase("app", api.PhaseReady)
	ctx := context.Background()
	last := ""
	for i := range 50 {
		want := string(rune('a'+i%26)) + string(rune('0'+i%10))
		if err := os.WriteFile(filepath.Join(src, "f.txt"), []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := p.eng.Wait(ctx, api.WaitRequest{Client: "test"})
		if err != nil {
			t.Fatal(err)
		}
	drain:
		for {
			select {
			case s := <-seen:
				last = s
			default:
				break drain
			}
		}
		if v.Result != api.ResultReady || last != want {
			t.Fatalf("round %d: verdict %s, the last update read %q, want %q: %+v", i, v.Result, last, want, v)
		}
		if len(v.Resources) != 1 || !v.Resources[0].Affected || v.Resources[0].Update == nil {
			t.Fatalf("round %d: verdict resources %+v", i, v.Resources)
		}
		u := v.Resources[0].Update
		if !slices.Contains(u.Paths, "../src/f.txt") && !slices.Contains(u.Paths, filepath.Join(src, "f.txt")) {
			t.Fatalf("round %d: update paths %v lack f.txt", i, u.Paths)
		}
		if len(u.Changes) == 0 || u.Changes[len(u.Changes)-1] != v.Change || u.ID == 0 {
			t.Fatalf("round %d: update %d changes %v, verdict change %d", i, u.ID, u.Changes, v.Change)
		}
	}
}

// TestWaitNothingChanged answers at once with the current state (the
// latest change, the first load, reached both); a failed resource makes it a
// failed verdict.
func TestWaitNothingChanged(t *testing.T) {
	p := newProjectHook(t, ModeUp, func(name string, j Job) Outcome {
		o := Outcome{Update: api.Update{Kind: api.UpdateInit, Started: j.Started, Ready: time.Now()}}
		if name == "bad" {
			o.Err = errors.New("exit status 2")
		}
		return o
	}, fakeDef{name: "ok"}, fakeDef{name: "bad"})
	p.waitPhase("ok", api.PhaseReady)
	p.waitPhase("bad", api.PhaseError)
	v, err := p.eng.Wait(context.Background(), api.WaitRequest{Resources: []string{"ok"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != api.ResultReady || len(v.Resources) != 1 || v.Resources[0].Phase != api.PhaseReady || v.Change != 1 {
		t.Fatalf("verdict %+v", v)
	}
	v, err = p.eng.Wait(context.Background(), api.WaitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != api.ResultFailed || v.Failed != "bad" || v.Error != "exit status 2" {
		t.Fatalf("verdict %+v", v)
	}
	if _, err := p.eng.Wait(context.Background(), api.WaitRequest{Resources: []string{"nope"}}); !errors.Is(err, ErrUnknownResource) {
		t.Fatalf("unknown resource: %v", err)
	}
}

// TestWaitTimesOut: an update that does not finish gives a timeout verdict
// naming what it waited for, and the waiter is dropped.
func TestWaitTimesOut(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	p := newProjectHook(t, ModeUp, func(_ string, j Job) Outcome {
		if j.Changes != nil {
			<-gate
		}
		return Outcome{Update: api.Update{Kind: api.UpdateLocal, Started: j.Started, Ready: time.Now()}}
	}, fakeDef{name: "app", dir: src})
	defer close(gate)
	p.waitPhase("app", api.PhaseReady)
	if err := os.WriteFile(filepath.Join(src, "f.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := p.eng.Wait(context.Background(), api.WaitRequest{Timeout: 300 * time.Millisecond, Client: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != api.ResultTimeout || len(v.Resources) != 1 || v.Resources[0].Note != "updating" {
		t.Fatalf("verdict %+v", v)
	}
	// The waits event said who waited on what, and then that nobody does.
	p.waitFor("waits to end", func() bool {
		var sawApp bool
		var last []api.Wait
		for _, ev := range p.events {
			if ev.Kind == api.EventWaits {
				last = ev.Waits
				for _, w := range ev.Waits {
					sawApp = sawApp || (w.Client == "test" && slices.Equal(w.Resources, []string{"app"}))
				}
			}
		}
		return sawApp && len(last) == 0
	})
}

// TestWaitDuringReload: a wait called after a Tiltfile edit covers the
// reload and the resources it starts.
func TestWaitDuringReload(t *testing.T) {
	p := newProject(t, ModeUp, fakeDef{name: "a"})
	p.waitPhase("a", api.PhaseReady)
	p.mu.Lock()
	p.loadGate = make(chan struct{})
	gate := p.loadGate
	p.mu.Unlock()
	p.setDefs(fakeDef{name: "a"}, fakeDef{name: "b"})
	p.writeTiltfile("# v2\n")
	got := make(chan api.Verdict, 1)
	go func() {
		v, err := p.eng.Wait(context.Background(), api.WaitRequest{})
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	p.waitFor("the reload to start and the wait to register", func() bool {
		return p.loads >= 2 && slices.ContainsFunc(p.events, func(ev api.Event) bool { return ev.Kind == api.EventWaits && len(ev.Waits) > 0 })
	})
	select {
	case v := <-got:
		t.Fatalf("wait returned during the reload: %+v", v)
	default:
	}
	close(gate)
	v := <-got
	if v.Result != api.ResultReady || !slices.ContainsFunc(v.Resources, func(r api.ResourceVerdict) bool {
		return r.Name == "b" && r.Affected && r.Phase == api.PhaseReady
	}) {
		t.Fatalf("verdict %+v", v)
	}
}

// TestWaitCoversWhatACommandWrote: a local command in the wait's set writes
// a file another resource watches (a compile's output); the wait covers
// that resource's update too.
func TestWaitCoversWhatACommandWrote(t *testing.T) {
	root := t.TempDir()
	src, out := filepath.Join(root, "src"), filepath.Join(root, "out")
	for _, d := range []string{src, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	used := make(chan string, 100)
	p := newProjectHook(t, ModeUp, func(name string, j Job) Outcome {
		b, _ := os.ReadFile(filepath.Join(src, "in.txt"))
		switch {
		case name == "gen":
			if err := os.WriteFile(filepath.Join(out, "out.txt"), b, 0o644); err != nil {
				t.Error(err)
			}
		case name == "use" && j.Changes != nil:
			got, _ := os.ReadFile(filepath.Join(out, "out.txt"))
			used <- string(got)
		}
		return Outcome{Update: api.Update{Kind: api.UpdateLocal, Started: j.Started, Ready: time.Now()}}
	}, fakeDef{name: "gen", dir: src, hostCmd: true}, fakeDef{name: "use", dir: out})
	p.waitPhase("use", api.PhaseReady)
	// gen's first run wrote out.txt: use's update for that may still come.
	// A wait covers it (what a command wrote before the call); then nothing
	// of the start is left to be mistaken for the update under test.
	if _, err := p.eng.Wait(context.Background(), api.WaitRequest{}); err != nil {
		t.Fatal(err)
	}
	for len(used) > 0 {
		<-used
	}
	if err := os.WriteFile(filepath.Join(src, "in.txt"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := p.eng.Wait(context.Background(), api.WaitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-used:
		if got != "v2" {
			t.Fatalf("use updated with %q, want v2", got)
		}
	default:
		t.Fatalf("the wait returned before use was updated with gen's output: %+v", v)
	}
	if r := v.Resources; len(r) != 2 || r[1].Name != "use" || !r[1].Affected {
		t.Fatalf("verdict resources %+v", r)
	}

	// A trigger, then a wait: the command runs while the wait's first
	// barrier is out; what it writes is still covered.
	if err := os.WriteFile(filepath.Join(src, "in.txt"), []byte("v3"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := p.eng.Wait(context.Background(), api.WaitRequest{}); err != nil {
		t.Fatal(err)
	}
	<-used
	for range 20 {
		if err := p.eng.Trigger(context.Background(), "gen"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.eng.Wait(context.Background(), api.WaitRequest{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-used:
		default:
			t.Fatalf("the wait after a trigger returned before use was updated with gen's output")
		}
	}
}
