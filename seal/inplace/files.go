package inplace

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cfsboot/verity"
)

// File is one file to seal and the digest its name promises.
type File struct {
	Path string
	Alg  verity.Algorithm
	Want string // hex
}

// Files lists the regular files under objects/XX/ and images/ of the store
// at dir with the digests their names promise. Symbolic links (images as
// links to objects, in the composefs-rs layout) and subdirectories such as
// images/refs are not files to seal; names that are not digests are errors.
func Files(dir string) ([]File, error) {
	var files []File
	add := func(path, hex string) error {
		alg, ok := verity.AlgorithmForHexLen(len(hex))
		if !ok || strings.Trim(hex, "0123456789abcdef") != "" {
			return fmt.Errorf("%s: name is not an fs-verity digest", path)
		}
		files = append(files, File{Path: path, Alg: alg, Want: hex})
		return nil
	}
	objects, err := os.ReadDir(filepath.Join(dir, "objects"))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	for _, sub := range objects {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, "objects", sub.Name()))
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", dir, err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			if err := add(filepath.Join(dir, "objects", sub.Name(), e.Name()), sub.Name()+e.Name()); err != nil {
				return nil, err
			}
		}
	}
	images, err := os.ReadDir(filepath.Join(dir, "images"))
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	for _, e := range images {
		if e.Type()&fs.ModeType != 0 {
			continue
		}
		if err := add(filepath.Join(dir, "images", e.Name()), e.Name()); err != nil {
			return nil, err
		}
	}
	return files, nil
}
