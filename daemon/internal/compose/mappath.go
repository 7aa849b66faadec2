package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/docker/docker/api/types/mount"
)

// mapBindSources rewrites the bind mount sources of sp with mapPath and, when
// any changed, folds the engine-side sources into the config hash so that a
// container made with other sources is replaced.
func mapBindSources(sp *containerSpec, mapPath func(string) string) {
	var mapped []string
	for i, b := range sp.Host.Binds {
		src, rest, _ := strings.Cut(b, ":")
		if m := mapPath(src); m != src {
			sp.Host.Binds[i] = m + ":" + rest
			mapped = append(mapped, m)
		}
	}
	for i, m := range sp.Host.Mounts {
		if m.Type != mount.TypeBind {
			continue
		}
		if src := mapPath(m.Source); src != m.Source {
			sp.Host.Mounts[i].Source = src
			mapped = append(mapped, src)
		}
	}
	if len(mapped) == 0 {
		return
	}
	sum := sha256.Sum256([]byte(sp.Hash + "\n" + strings.Join(mapped, "\n")))
	sp.Hash = hex.EncodeToString(sum[:])
	sp.Config.Labels[LabelConfigHash] = sp.Hash
}
