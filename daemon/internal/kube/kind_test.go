package kube

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/internal/testenv"
)

// TestLoadIntoKind streams an image into a node container of a kind cluster the way
// `kind load docker-image` does. The node is a stand-in (busybox labelled as a kind
// node) whose ctr keeps what it is sent, so the test reads the image tar that arrived
// through the real Docker engine: its manifest names the image. A second load of the
// same image into the same node is skipped.
func TestLoadIntoKind(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t)
	cluster := fmt.Sprintf("looptest%d", time.Now().UnixNano()%1000000)
	node := testenv.BuildImage(t, "loop/kind-node-standin:"+cluster, map[string][]byte{
		"Dockerfile": []byte("FROM " + base + "\nCOPY ctr /bin/ctr\n"),
		"ctr":        []byte("#!/bin/sh\necho \"$@\" >> /tmp/ctr-args\ncat > /tmp/imported.tar\necho imported\n"),
	})
	id := testenv.RunContainer(t, &container.Config{
		Image: node, Cmd: []string{"sleep", "600"},
		Labels: map[string]string{KindClusterLabel: cluster},
	}, nil)
	img := testenv.BuildImage(t, "loop/kind-load-test:"+cluster, map[string][]byte{
		"Dockerfile": []byte("FROM " + base + "\nLABEL loop.test=kind-load\n"),
	})

	var logs bytes.Buffer
	loaded := map[string]bool{}
	seen := func(k string) bool { s := loaded[k]; loaded[k] = true; return s }
	ctx := context.Background()
	if err := LoadIntoKind(ctx, cli, cluster, []string{img}, &logs, seen); err != nil {
		t.Fatalf("load: %v\n%s", err, logs.String())
	}
	if args := testenv.Exec(t, id, "cat", "/tmp/ctr-args"); strings.TrimSpace(args) != "--namespace=k8s.io images import --all-platforms --digests -" {
		t.Fatalf("ctr ran with %q", args)
	}
	tarData := testenv.Exec(t, id, "cat", "/tmp/imported.tar")
	tags := manifestTags(t, []byte(tarData))
	if !strings.Contains(strings.Join(tags, " "), img) {
		t.Fatalf("the tar that reached the node holds %v, want %s", tags, img)
	}
	if !strings.Contains(logs.String(), "loaded "+img) {
		t.Errorf("logs: %q", logs.String())
	}

	// Loaded before: nothing is sent again.
	testenv.Exec(t, id, "rm", "/tmp/ctr-args")
	if err := LoadIntoKind(ctx, cli, cluster, []string{img}, &logs, seen); err != nil {
		t.Fatal(err)
	}
	if _, code := testenv.ExecCode(t, id, "cat", "/tmp/ctr-args"); code == 0 {
		t.Fatalf("the same image was imported into the same node twice")
	}

	// A cluster without node containers on this engine: said, not an error.
	logs.Reset()
	if err := LoadIntoKind(ctx, cli, cluster+"-absent", []string{img}, &logs, nil); err != nil || !strings.Contains(logs.String(), "no node containers") {
		t.Fatalf("absent cluster: %v, %q", err, logs.String())
	}
}

// manifestTags reads the RepoTags of a docker-save tar.
func manifestTags(t *testing.T, data []byte) []string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no manifest.json in the imported tar (%d bytes)", len(data))
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			t.Fatal(err)
		}
		var tags []string
		for _, e := range m {
			tags = append(tags, e.RepoTags...)
		}
		return tags
	}
}
