package compose

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/internal/testenv"
)

func TestEffectiveCommand(t *testing.T) {
	imgEP, imgCmd := []string{"/ep"}, []string{"img-arg"}
	for _, tc := range []struct {
		name          string
		ep, cmd       []string
		wantEP, wantC []string
	}{
		{"image's", nil, nil, imgEP, imgCmd},
		{"command replaces the image's", nil, []string{"c"}, imgEP, []string{"c"}},
		{"entrypoint drops the image's command", []string{"/e"}, nil, []string{"/e"}, nil},
		{"both", []string{"/e"}, []string{"c"}, []string{"/e"}, []string{"c"}},
		{"empty entrypoint clears the image's", []string{}, nil, []string{}, imgCmd},
	} {
		ep, c := effectiveCommand(tc.ep, tc.cmd, imgEP, imgCmd)
		if !slices.Equal(ep, tc.wantEP) || !slices.Equal(c, tc.wantC) || (tc.wantEP != nil && ep == nil) {
			t.Errorf("%s: got %q %q, want %q %q", tc.name, ep, c, tc.wantEP, tc.wantC)
		}
	}
}

func TestSpecSupervise(t *testing.T) {
	p, plain := loadSpec(t, "services:\n  a:\n    image: x\n    command: [\"run\", \"it\"]\n")
	sup := &supervision{wrapper: []string{"/w", "--"}, imageEntrypoint: []string{"/ep"}}
	sp, err := p.spec(p.Services[0], "img:1", "sha256:abc", "", sup)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string(sp.Config.Entrypoint); !slices.Equal(got, []string{"/w", "--", "/ep"}) {
		t.Errorf("entrypoint = %q", got)
	}
	if got := []string(sp.Config.Cmd); !slices.Equal(got, []string{"run", "it"}) {
		t.Errorf("cmd = %q", got)
	}
	if sp.Hash == plain.Hash {
		t.Errorf("wrapping left the config hash unchanged")
	}
	for _, compose := range []string{
		"services:\n  a:\n    image: x\n    tty: true\n    command: [\"run\"]\n",
		"services:\n  a:\n    image: x\n    read_only: true\n    command: [\"run\"]\n",
		"services:\n  a:\n    image: x\n",
	} {
		p, _ := loadSpec(t, compose)
		sp, err := p.spec(p.Services[0], "img:1", "sha256:abc", "", &supervision{wrapper: []string{"/w"}})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(sp.Config.Entrypoint, "/w") {
			t.Errorf("%q: wrapped (%q), want left alone", compose, sp.Config.Entrypoint)
		}
	}
}

// TestSuperviseRunsWhatTheEngineWould compares, on the real engine, what a
// container runs without and with the supervisor wrapping: a transparent
// wrapper must print exactly the same, for each way a service can combine
// its entrypoint and command with the image's.
func TestSuperviseRunsWhatTheEngineWould(t *testing.T) {
	t.Parallel()
	img := fmt.Sprintf("loop-test/compose-supervise:%d", time.Now().UnixNano())
	testenv.BuildImage(t, img, map[string][]byte{
		"Dockerfile": []byte("FROM " + testenv.Busybox(t) + "\nENTRYPOINT [\"echo\", \"img-ep\"]\nCMD [\"img-cmd\"]\n"),
	})
	tp := newTestProject(t, `
services:
  image-only:
    image: ${IMG}
  command:
    image: ${IMG}
    command: ["svc-cmd", "two words"]
  entrypoint:
    image: ${IMG}
    entrypoint: ["echo", "svc-ep"]
  both:
    image: ${IMG}
    entrypoint: ["echo", "svc-ep"]
    command: ["svc-cmd"]
  string-command:
    image: ${BUSYBOX}
    command: echo one "two  three"
`, nil)
	p := tp.load("IMG=" + img)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wrapper := []string{"/bin/sh", "-c", `echo wrapped; exec "$@"`, "wrapper"}
	output := func(id string) string {
		var w recordingWriter
		if err := tp.ctl.Logs(ctx, id, time.Time{}, &w); err != nil {
			t.Fatal(err)
		}
		return strings.Join(w.writes, "")
	}
	for _, svc := range []string{"image-only", "command", "entrypoint", "both", "string-command"} {
		plainID, err := tp.ctl.Up(ctx, p, svc, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		plain := output(plainID)
		wrappedID, err := tp.ctl.Up(ctx, p, svc, "", nil, Supervise(wrapper))
		if err != nil {
			t.Fatal(err)
		}
		if wrappedID == plainID {
			t.Errorf("%s: Supervise kept the unwrapped container", svc)
		}
		got := output(wrappedID)
		if got != "wrapped\n"+plain {
			t.Errorf("%s: wrapped container printed %q, want %q", svc, got, "wrapped\n"+plain)
		}
		if ep := inspect(t, wrappedID).Config.Entrypoint; !slices.Equal(ep[:len(wrapper)], wrapper) {
			t.Errorf("%s: entrypoint %q does not start with the wrapper", svc, ep)
		}
		if plain == "" {
			t.Errorf("%s: the plain container printed nothing", svc)
		}
	}
}
