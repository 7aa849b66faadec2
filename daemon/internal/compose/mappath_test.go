package compose

import (
	"strings"
	"testing"
)

func TestMapBindSources(t *testing.T) {
	p, sp := loadSpec(t, `
services:
  s:
    image: x
    volumes:
      - ./site:/www:ro
      - type: bind
        source: ./data
        target: /data
        bind:
          create_host_path: false
      - named:/named
volumes:
  named: {}
`)
	before := sp.Hash
	mapPath := func(s string) string {
		if rest, ok := strings.CutPrefix(s, p.WorkingDir); ok {
			return "/host/ws" + rest
		}
		return s
	}
	mapBindSources(sp, mapPath)
	if len(sp.Host.Binds) != 1 || sp.Host.Binds[0] != "/host/ws/site:/www:ro" {
		t.Errorf("binds: got %v, want [/host/ws/site:/www:ro]", sp.Host.Binds)
	}
	var sources []string
	for _, m := range sp.Host.Mounts {
		sources = append(sources, string(m.Type)+" "+m.Source)
	}
	if got, want := strings.Join(sources, ","), "bind /host/ws/data,volume p_named"; got != want {
		t.Errorf("mounts: got %s, want %s", got, want)
	}
	if sp.Hash == before || sp.Config.Labels[LabelConfigHash] != sp.Hash {
		t.Errorf("config hash must change with the mapped sources and be in the label: before %s, after %s, label %s", before, sp.Hash, sp.Config.Labels[LabelConfigHash])
	}

	// An identity mapping changes nothing, the hash included.
	_, sp2 := loadSpec(t, "services:\n  s:\n    image: x\n    volumes: [\"./a:/a\"]\n")
	h := sp2.Hash
	mapBindSources(sp2, func(s string) string { return s })
	if sp2.Hash != h {
		t.Error("identity mapping changed the hash")
	}
}
