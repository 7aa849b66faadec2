package build

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
)

// Push tags the built image src as dst and pushes dst to its registry, saying in
// logs where it went. Registries reached on loopback (a kind cluster's local
// registry) take plain HTTP and no credentials, as the engine allows.
func (b *Builder) Push(ctx context.Context, src, dst string, logs io.Writer) error {
	if err := b.cli.ImageTag(ctx, src, dst); err != nil {
		return fmt.Errorf("tag %s as %s: %w", src, dst, err)
	}
	// The engine wants an auth header even for a registry without auth.
	rc, err := b.cli.ImagePush(ctx, dst, image.PushOptions{RegistryAuth: base64.URLEncoding.EncodeToString([]byte("{}"))})
	if err != nil {
		return fmt.Errorf("push %s: %w", dst, err)
	}
	defer rc.Close()
	var digest string
	err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, func(msg jsonmessage.JSONMessage) {
		var aux struct{ Digest string }
		if msg.Aux != nil && json.Unmarshal(*msg.Aux, &aux) == nil && aux.Digest != "" {
			digest = aux.Digest
		}
	})
	if err != nil {
		return fmt.Errorf("push %s: %w", dst, err)
	}
	fmt.Fprintf(logs, "pushed %s (%s)\n", dst, digest)
	return nil
}
