package engine

import (
	"sort"
	"strings"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/model"
)

// secretSuffixes mark environment names whose values are secret by default.
var secretSuffixes = []string{"_TOKEN", "_PASSWORD", "_SECRET"}

// minSecretLen is the shortest value masked: masking "1" or "yes" would
// garble every log line and hide nothing worth hiding.
const minSecretLen = 4

// maskText replaces a secret value in log lines, errors and the UI.
const maskText = "********"

// masker hides secret environment values in the text of events. It is
// immutable once built; the engine swaps in a new one when the config
// (Settings.Secrets) changes.
type masker struct {
	r *strings.Replacer // nil: nothing to mask
}

// isSecretName reports whether an environment name is secret: it ends in
// one of secretSuffixes (any case) or the user named it.
func isSecretName(name string, named map[string]bool) bool {
	if named[name] {
		return true
	}
	up := strings.ToUpper(name)
	for _, s := range secretSuffixes {
		if strings.HasSuffix(up, s) || up == s[1:] {
			return true
		}
	}
	return false
}

// newMasker builds a masker for the secret values of env (NAME=value
// entries), with names the user marked secret (Settings.Secrets) added to
// the default suffixes.
func newMasker(env []string, names []string) *masker {
	named := map[string]bool{}
	for _, n := range names {
		named[n] = true
	}
	seen := map[string]bool{}
	var values []string
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || len(value) < minSecretLen || seen[value] || !isSecretName(name, named) {
			continue
		}
		seen[value] = true
		values = append(values, value)
	}
	if len(values) == 0 {
		return &masker{}
	}
	// Longest first, so a value containing another is masked whole.
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	args := make([]string, 0, 2*len(values))
	for _, v := range values {
		args = append(args, v, maskText)
	}
	return &masker{r: strings.NewReplacer(args...)}
}

func (m *masker) mask(s string) string {
	if m == nil || m.r == nil || s == "" {
		return s
	}
	return m.r.Replace(s)
}

// event masks every text an event carries to clients: log and config text
// and the errors in a status. The status is the event's own copy.
func (m *masker) event(ev *api.Event) {
	if m == nil || m.r == nil {
		return
	}
	ev.Text = m.mask(ev.Text)
	if st := ev.Status; st != nil {
		st.Error = m.mask(st.Error)
		if st.LastUpdate != nil {
			st.LastUpdate.Error = m.mask(st.LastUpdate.Error)
		}
	}
}

// secretEnv is the environment whose secret values are masked: loop's own
// and what local resources add to their commands' environments.
func secretEnv(env []string, cfg *model.Config) []string {
	out := append([]string(nil), env...)
	for _, lr := range cfg.LocalResources {
		for _, m := range []map[string]string{lr.Env, lr.ServeEnv} {
			for k, v := range m {
				out = append(out, k+"="+v)
			}
		}
	}
	return out
}
