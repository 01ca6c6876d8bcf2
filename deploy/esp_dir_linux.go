package deploy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DirESP is an ESP mounted at a directory (/efi or /boot on a running
// system).
type DirESP string

func (d DirESP) path(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

func (d DirESP) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(d.path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func (d DirESP) ReadFile(name string) ([]byte, error) {
	b, err := os.ReadFile(d.path(name))
	if err != nil {
		return nil, fmt.Errorf("esp: %w", err)
	}
	return b, nil
}

func (d DirESP) Put(name string, src io.Reader) error {
	tmp := d.path(tempName(name))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("esp: %w", err)
	}
	_, err = io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, d.path(name))
	}
	if err == nil {
		err = syncRenamed(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("esp: write %s: %w", name, err)
	}
	return syncDir(filepath.Dir(d.path(name)))
}

func (d DirESP) Rename(from, to string) error {
	if err := os.Rename(d.path(from), d.path(to)); err != nil {
		return fmt.Errorf("esp: %w", err)
	}
	f, err := os.Open(d.path(to))
	if err != nil {
		return fmt.Errorf("esp: %w", err)
	}
	err = syncRenamed(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("esp: rename %s: %w", to, err)
	}
	return syncDir(filepath.Dir(d.path(to)))
}

// syncRenamed flushes a file after a rename. On FAT (vfat_rename) the new
// directory slot is first written with no clusters and size 0, and gets
// them only when the inode itself is written back; a directory fsync does
// not do that, so without this a power cut leaves an empty entry.
func syncRenamed(f *os.File) error { return f.Sync() }

func (d DirESP) Remove(name string) error {
	if err := os.Remove(d.path(name)); err != nil {
		return fmt.Errorf("esp: %w", err)
	}
	return syncDir(filepath.Dir(d.path(name)))
}

func (d DirESP) MkdirAll(dir string) error {
	if err := os.MkdirAll(d.path(dir), 0o755); err != nil {
		return fmt.Errorf("esp: %w", err)
	}
	return nil
}

// syncDir flushes a directory, so that a rename in it survives a power cut.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
