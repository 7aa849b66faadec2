package daemon

import (
	"context"
	"io"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/model"
)

// DevcontainerBuilder returns loop's image builder for package devcontainer
// (its BuildFunc): the context is filtered by .dockerignore and the image
// tagged by a hash of its inputs, so an unchanged dev container image is
// not rebuilt.
func DevcontainerBuilder(cli *client.Client) func(ctx context.Context, img *model.Image, logs io.Writer) (string, error) {
	b := build.New(cli)
	return func(ctx context.Context, img *model.Image, logs io.Writer) (string, error) {
		res, err := b.Build(ctx, img, logs)
		if err != nil {
			return "", err
		}
		return res.Ref, nil
	}
}
