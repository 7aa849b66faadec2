package liveupdate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/loop-dev/loop/daemon/model"
)

// InitialSync lists every file under each sync's local path as a change:
// for initial_sync(), and for a container started from its image that must
// receive every change made since the image was built. Regular files,
// symlinks and empty directories are listed (other directories arrive with
// their files). ignore, when not nil, is asked about each path (isDir says
// whether it is a directory); an ignored directory is skipped whole. A
// missing local path lists nothing.
func InitialSync(lu *model.LiveUpdate, ignore func(path string, isDir bool) bool) ([]Change, error) {
	if lu == nil {
		return nil, nil
	}
	var changes []Change
	for _, s := range lu.Syncs {
		root := filepath.Clean(s.LocalPath)
		// The sync's own path may be a symlink; walk where it points and
		// report the paths as the watcher sees them.
		real, err := filepath.EvalSymlinks(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list files of sync %s: %w", root, err)
		}
		err = filepath.WalkDir(real, func(rp string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, err := filepath.Rel(real, rp)
			if err != nil {
				return err
			}
			p := filepath.Join(root, rel)
			if ignore != nil && p != root && ignore(p, d.IsDir()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() {
				changes = append(changes, Change{Path: p})
				return nil
			}
			if p == root {
				return nil
			}
			empty, err := isEmptyDir(rp)
			if err != nil {
				return err
			}
			if empty {
				changes = append(changes, Change{Path: p})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list files of sync %s: %w", root, err)
		}
	}
	return changes, nil
}

func isEmptyDir(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) == 0 {
		return true, nil
	}
	return false, err
}
