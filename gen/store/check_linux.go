package store

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// Problem is one inconsistency Fsck found.
type Problem struct {
	Path   string
	Reason string
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// Images lists the digests of the images in the store, and problems with
// entries of images/ that are not named by a digest.
func (s *Store) Images() ([]verity.Digest, []Problem, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "images"))
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	var ds []verity.Digest
	var problems []Problem
	for _, e := range entries {
		d, err := verity.ParseDigest(e.Name())
		if err != nil {
			problems = append(problems, Problem{filepath.Join(s.dir, "images", e.Name()), "not named by an fs-verity digest"})
			continue
		}
		ds = append(ds, d)
	}
	return ds, problems, nil
}

// references reads an image and returns the objects its files point to,
// with the digest each file expects (nil when the image records none).
func references(path string) (map[string]*verity.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	root, err := erofs.Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	refs := map[string]*verity.Digest{}
	err = root.Walk(func(n *tree.Node) error {
		if n.LinkTo == nil && n.Mode&tree.SIFMT == tree.SIFREG && n.Content == nil && n.Payload != "" {
			refs[n.Payload] = n.Digest
		}
		return nil
	})
	return refs, err
}

// Fsck checks that every image is named by its digest and readable, that
// every object an image references exists with the digest the image
// expects, and that every object is named by its digest.
func (s *Store) Fsck() ([]Problem, error) {
	images, problems, err := s.Images()
	if err != nil {
		return nil, err
	}
	checked := map[string]bool{}
	for _, d := range images {
		path := s.ImagePath(d)
		got, err := s.FileDigest(path)
		if err != nil {
			problems = append(problems, Problem{path, err.Error()})
			continue
		}
		if got != d {
			problems = append(problems, Problem{path, fmt.Sprintf("fs-verity digest is %s, not its name", got)})
			continue
		}
		refs, err := references(path)
		if err != nil {
			problems = append(problems, Problem{path, err.Error()})
			continue
		}
		for obj, want := range refs {
			objPath := filepath.Join(s.dir, "objects", obj)
			if want != nil && obj != tree.ObjectPath(*want) {
				problems = append(problems, Problem{path, fmt.Sprintf("file redirects to %s but expects digest %s", obj, want)})
			}
			if _, err := os.Lstat(objPath); err != nil {
				problems = append(problems, Problem{objPath, fmt.Sprintf("missing (referenced by image %s)", d)})
				checked[obj] = true
			}
		}
	}
	err = s.walkObjects(func(rel, path string) {
		if checked[rel] {
			return
		}
		want, perr := verity.ParseDigest(strings.Replace(rel, "/", "", 1))
		if perr != nil || tree.ObjectPath(want) != rel {
			problems = append(problems, Problem{path, "not named by an fs-verity digest"})
			return
		}
		got, err := s.FileDigest(path)
		switch {
		case err != nil:
			problems = append(problems, Problem{path, err.Error()})
		case got != want:
			problems = append(problems, Problem{path, fmt.Sprintf("content has fs-verity digest %s, not its name", got)})
		}
	})
	sort.Slice(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
	return problems, err
}

// walkObjects calls fn for every file below objects/ (rel is "xx/yyyy").
func (s *Store) walkObjects(fn func(rel, path string)) error {
	base := filepath.Join(s.dir, "objects")
	return filepath.WalkDir(base, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(base, path)
		if err != nil {
			return err
		}
		fn(rel, path)
		return nil
	})
}

// GC removes objects that no image references, and leftover temporary
// files. With dryRun it only reports them.
func (s *Store) GC(dryRun bool) (removed []string, freed int64, err error) {
	images, _, err := s.Images()
	if err != nil {
		return nil, 0, err
	}
	live := map[string]bool{}
	for _, d := range images {
		refs, err := references(s.ImagePath(d))
		if err != nil {
			return nil, 0, fmt.Errorf("store gc: refusing to collect with an unreadable image: %w", err)
		}
		for obj := range refs {
			live[obj] = true
		}
	}
	err = s.walkObjects(func(rel, path string) {
		if live[rel] {
			return
		}
		if st, err := os.Lstat(path); err == nil {
			freed += st.Size()
		}
		removed = append(removed, path)
	})
	if err != nil || dryRun {
		return removed, freed, err
	}
	for _, p := range removed {
		if err := os.Remove(p); err != nil {
			return removed, freed, fmt.Errorf("store gc: %w", err)
		}
	}
	return removed, freed, nil
}
