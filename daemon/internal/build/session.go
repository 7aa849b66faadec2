package build

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"

	"github.com/loop-dev/loop/daemon/model"
)

// A build with docker_build(ssh=) or (secret=) opens a BuildKit session
// with the engine (its /session endpoint, as the docker CLI does), through
// which BuildKit asks loop for the SSH agent and the secrets while a RUN
// --mount=type=ssh|secret step runs. Nothing of them goes into the context
// or the image.

// buildSession is a running session; close it after the build.
type buildSession struct {
	sess *session.Session
	done chan struct{}
	err  error
}

// startSession opens a session offering img's SSH and secrets, or returns
// nil when img has none.
func (b *Builder) startSession(ctx context.Context, img *model.Image) (*buildSession, error) {
	if len(img.SSH) == 0 && len(img.BuildSecrets) == 0 {
		return nil, nil
	}
	sess, err := session.NewSession(ctx, img.Context)
	if err != nil {
		return nil, fmt.Errorf("build session: %w", err)
	}
	if len(img.BuildSecrets) > 0 {
		var srcs []secretsprovider.Source
		for _, s := range img.BuildSecrets {
			sp, err := model.ParseSecretSpec(s)
			if err != nil {
				return nil, fmt.Errorf("build secret: %w", err)
			}
			if sp.Src != "" {
				if _, err := os.Stat(sp.Src); err != nil {
					return nil, fmt.Errorf("build secret %s: %w", sp.ID, err)
				}
			}
			srcs = append(srcs, secretsprovider.Source{ID: sp.ID, FilePath: sp.Src, Env: sp.Env})
		}
		store, err := secretsprovider.NewStore(srcs)
		if err != nil {
			return nil, fmt.Errorf("build secrets: %w", err)
		}
		sess.Allow(secretsprovider.NewSecretProvider(store))
	}
	if len(img.SSH) > 0 {
		var confs []sshprovider.AgentConfig
		for _, s := range img.SSH {
			id, paths, _ := strings.Cut(s, "=")
			c := sshprovider.AgentConfig{ID: id}
			if paths != "" {
				c.Paths = strings.Split(paths, ",")
			}
			confs = append(confs, c)
		}
		p, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return nil, fmt.Errorf("build ssh: %w", err)
		}
		sess.Allow(p)
	}
	bs := &buildSession{sess: sess, done: make(chan struct{})}
	// Owned by the build: it ends when Close closes the session (or ctx ends),
	// and close waits for it.
	go func() {
		defer close(bs.done)
		bs.err = sess.Run(ctx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return b.cli.DialHijack(ctx, "/session", proto, meta)
		})
	}()
	return bs, nil
}

// id is the session's ID for the build request ("" for no session).
func (bs *buildSession) id() string {
	if bs == nil {
		return ""
	}
	return bs.sess.ID()
}

// close ends the session and waits for it.
func (bs *buildSession) close() {
	if bs == nil {
		return
	}
	_ = bs.sess.Close()
	<-bs.done
}
