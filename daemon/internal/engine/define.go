package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/model"
)

// Helpers for kinds that make Resources.

// Hash fingerprints a resource definition, so that a reload replaces only
// resources whose definition changed.
func Hash(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			b = fmt.Appendf(nil, "%v", p)
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Links converts the Tiltfile's links for a resource's status.
func Links(ls []model.Link) []api.Link {
	var out []api.Link
	for _, l := range ls {
		out = append(out, api.Link{URL: l.URL, Name: l.Name})
	}
	return out
}

// DefaultTrigger is the config's trigger mode for resources that set none.
func DefaultTrigger(cfg *model.Config) model.TriggerMode {
	if cfg.Settings.TriggerMode == "" {
		return model.TriggerAuto
	}
	return cfg.Settings.TriggerMode
}
