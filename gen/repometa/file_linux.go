package repometa

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"cfsboot/verity"
)

// maxFileSize bounds what Load reads: meta.json is a few hundred bytes.
const maxFileSize = 1 << 20

// Load reads dir/meta.json. It returns (nil, false, nil) when there is none:
// a store that predates meta.json (or was never a composefs-rs repository)
// keeps working as before. secure reports whether meta.json itself carries
// fs-verity, which is how composefs-rs marks a repository whose objects
// must all have it; its algorithm must be the repository's.
func Load(dir string) (m *Meta, secure bool, err error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, false, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	if m, err = Parse(data); err != nil {
		return nil, false, fmt.Errorf("%s: %w", dir, err)
	}
	sum, err := verity.MeasureSum(int(f.Fd()))
	switch {
	case errors.Is(err, verity.ErrNotEnabled), errors.Is(err, verity.ErrNotSupported):
		return m, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("%s: %w", path, err)
	case sum.Algorithm() != m.Algorithm:
		return nil, false, fmt.Errorf("%s: sealed with fs-verity %s, but the repository's algorithm is %s", path, sum.Algorithm(), m.Algorithm)
	}
	return m, true, nil
}

// Save writes dir/meta.json, which must not exist yet (composefs-rs fixes
// the metadata at creation). With seal, fs-verity is enabled on it with
// the repository's algorithm before it appears, marking the repository as
// one whose objects all need fs-verity.
func Save(dir string, m *Meta, seal bool) error {
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("repository metadata: %w", err)
	}
	path := filepath.Join(dir, FileName)
	tmp, err := os.CreateTemp(dir, "."+FileName+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if seal {
		ro, err := os.Open(tmp.Name())
		if err != nil {
			return err
		}
		err = verity.EnableAlgorithm(int(ro.Fd()), m.Algorithm)
		ro.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
