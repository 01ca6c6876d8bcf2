package deploy

import (
	"io"
	"path"
)

// ESP is the EFI system partition the deployments' entries live on: a
// mounted directory on a running system (DirESP) or a FAT image inside a
// disk file for offline work (ImageESP). Names are slash-separated and
// relative to the ESP's root.
type ESP interface {
	// List returns the names of the files in dir; none when dir is absent.
	List(dir string) ([]string, error)
	ReadFile(name string) ([]byte, error)
	// Put writes src under a temporary name in name's directory, flushes
	// it and renames it to name: name is either absent or complete.
	Put(name string, src io.Reader) error
	// Rename renames within one directory, flushed before returning.
	Rename(from, to string) error
	Remove(name string) error
	MkdirAll(dir string) error
}

// tempName is where Put stages name: in the same directory, with a suffix
// systemd-boot does not load (it only looks at *.efi and *.conf).
func tempName(name string) string {
	return path.Join(path.Dir(name), "."+path.Base(name)+".tmp")
}
