package engine

import (
	"testing"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/model"
)

func TestMaskerHidesSecretValues(t *testing.T) {
	env := []string{
		"GITHUB_TOKEN=ghp_abcdef", "db_password=pw-long-1", "APP_SECRET=abc-secret",
		"MY_KEY=named-key-9", "SHORT_TOKEN=abc", "HOME=/root", "TOKEN=bare-token",
		"PREFIX_TOKEN=ghp_abcdef-longer", "NOEQUALS",
	}
	m := newMasker(env, []string{"MY_KEY"})
	cases := map[string]string{
		"token ghp_abcdef here":         "token ******** here",
		"pw-long-1 and abc-secret":      "******** and ********",
		"named-key-9":                   "********",
		"bare-token":                    "********",
		"ghp_abcdef-longer is one":      "******** is one", // the longer value wins
		"abc stays (too short to mask)": "abc stays (too short to mask)",
		"home is /root":                 "home is /root",
	}
	for in, want := range cases {
		if got := m.mask(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
	ev := api.Event{Text: "x ghp_abcdef", Status: &api.ResourceStatus{Error: "e pw-long-1", LastUpdate: &api.Update{Error: "u abc-secret"}}}
	m.event(&ev)
	if ev.Text != "x ********" || ev.Status.Error != "e ********" || ev.Status.LastUpdate.Error != "u ********" {
		t.Errorf("event after masking = %q / %q / %q", ev.Text, ev.Status.Error, ev.Status.LastUpdate.Error)
	}
	var none *masker
	if got := none.mask("ghp_abcdef"); got != "ghp_abcdef" {
		t.Errorf("nil masker changed text: %q", got)
	}
}

func TestSecretEnvIncludesLocalResourceEnv(t *testing.T) {
	cfg := &model.Config{LocalResources: []*model.LocalResource{{Name: "a", Env: map[string]string{"API_TOKEN": "from-tiltfile"}, ServeEnv: map[string]string{"X_SECRET": "serve-secret"}}}}
	m := newMasker(secretEnv([]string{"A=b"}, cfg), nil)
	if got := m.mask("from-tiltfile serve-secret"); got != "******** ********" {
		t.Errorf("mask = %q, want both local_resource values masked", got)
	}
}
