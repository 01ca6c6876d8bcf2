package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cfsboot/gen/erofs"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// roots is what keeps objects alive: every image in images/ (a file, or
// composefs-rs's symlink into objects/) with the objects its files point
// to, and every splitstream in streams/ with the objects and streams it
// references. All of them count, not only those named by a ref: gc
// removes no image or stream, so nothing they need may go.
type roots struct {
	images []string            // images/<digest> entries
	users  map[string][]string // object ("xx/rest") -> the images and streams that use it
	// misdirected: image files whose redirect names another object than
	// the digest they expect (found while reading, not kept per object).
	misdirected []Problem
	// unreadable: images and streams whose references are unknown, so
	// gc cannot tell what they keep alive.
	unreadable []Problem
	broken     []Problem // misnamed entries and dangling refs
}

func (s *Store) roots() (*roots, error) {
	r := &roots{users: map[string][]string{}}
	if err := s.imageRoots(r); err != nil {
		return nil, err
	}
	if err := s.refRoots(r); err != nil {
		return nil, err
	}
	if err := s.streamRoots(r); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *roots) use(obj, user string) { r.users[obj] = append(r.users[obj], user) }

// objectOf returns "xx/rest" when the symlink at path (in a directory one
// level below the store) points into objects/.
func objectOf(path string) (string, bool) {
	target, err := os.Readlink(path)
	if err != nil {
		return "", false
	}
	rel, ok := strings.CutPrefix(filepath.Clean(target), "../objects/")
	return rel, ok && validObjectPath(rel)
}

func (s *Store) imageRoots(r *roots) error {
	dir := filepath.Join(s.dir, "images")
	entries, err := readDirIfExists(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "refs" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		named := validHexName(e.Name())
		if named {
			r.images = append(r.images, path)
		} else {
			// Read it all the same: if it is an image, its objects live.
			r.broken = append(r.broken, Problem{Path: path, Reason: "not named by an fs-verity digest"})
		}
		if e.Type()&fs.ModeSymlink != 0 {
			obj, ok := objectOf(path)
			if !ok {
				r.broken = append(r.broken, Problem{Path: path, Reason: "symlink that does not point into objects/"})
				continue
			}
			r.use(obj, path)
			if named && obj != e.Name()[:2]+"/"+e.Name()[2:] {
				r.broken = append(r.broken, Problem{Path: path, Reason: "points to object " + obj + ", not the one its name gives"})
			}
		}
		err = imageReferences(path, func(obj string, want verity.Sum) {
			if u := r.users[obj]; len(u) > 0 && u[len(u)-1] == path {
				return // once per image and object
			}
			r.use(obj, path)
			if !want.IsZero() && obj != tree.ObjectPathOf(want) {
				r.misdirected = append(r.misdirected, Problem{Path: path, Reason: fmt.Sprintf("a file redirects to %s but expects digest %s", obj, want)})
			}
		})
		if err != nil && named {
			r.unreadable = append(r.unreadable, Problem{Path: path, Reason: err.Error()})
		}
	}
	return nil
}

// imageReferences reads an image and calls ref with the object each of
// its files points to and the digest the file expects (zero when the image
// records none). A failed read calls ref for none.
func imageReferences(path string, ref func(obj string, want verity.Sum)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	root, err := erofs.Read(f, st.Size())
	if err != nil {
		return fmt.Errorf("unreadable image: %w", err)
	}
	return root.Walk(func(n *tree.Node) error {
		if n.LinkTo == nil && n.Mode&tree.SIFMT == tree.SIFREG && n.Content == nil && n.Payload != "" {
			want, _ := n.FileDigest()
			ref(n.Payload, want)
		}
		return nil
	})
}

// refRoots checks that every ref under images/refs/ names an image (refs
// keep nothing alive by themselves: every image already does).
func (s *Store) refRoots(r *roots) error {
	base := filepath.Join(s.dir, "images", "refs")
	err := filepath.WalkDir(base, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == base {
				return fs.SkipDir
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), tempPrefix) {
			return nil
		}
		if e.Type()&fs.ModeSymlink == 0 {
			r.broken = append(r.broken, Problem{Path: path, Reason: "ref is not a symlink"})
		} else if _, err := os.Stat(path); err != nil {
			r.broken = append(r.broken, Problem{Path: path, Reason: "ref names no image: " + err.Error()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// streamRoots follows every splitstream in streams/ and, through their
// stream references, the streams they name.
func (s *Store) streamRoots(r *roots) error {
	dir := filepath.Join(s.dir, "streams")
	entries, err := readDirIfExists(dir)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var walk func(obj, user string)
	walk = func(obj, user string) {
		r.use(obj, user)
		if seen[obj] {
			return
		}
		seen[obj] = true
		path := filepath.Join(s.dir, "objects", obj)
		f, err := os.Open(path)
		if err != nil {
			return // fsck reports the missing object
		}
		defer f.Close()
		st, err := f.Stat()
		if err == nil {
			var streams, objects []string
			if streams, objects, err = splitstreamRefs(f, st.Size()); err == nil {
				for _, o := range objects {
					r.use(o, path)
				}
				for _, o := range streams {
					walk(o, path)
				}
				return
			}
		}
		r.unreadable = append(r.unreadable, Problem{Path: path, Reason: fmt.Sprintf("stream %s: %v", user, err)})
	}
	for _, e := range entries {
		if e.Name() == "refs" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		obj, ok := objectOf(path)
		if !ok {
			r.broken = append(r.broken, Problem{Path: path, Reason: "stream that is not a symlink into objects/"})
			continue
		}
		walk(obj, path)
	}
	return nil
}

func readDirIfExists(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return entries, nil
}

// validObjectPath: "xx/rest" in lowercase hex, for a SHA-256 or SHA-512
// digest.
func validObjectPath(rel string) bool {
	dir, name, ok := strings.Cut(rel, "/")
	return ok && len(dir) == 2 && validHexName(dir+name)
}

func validHexName(s string) bool {
	if len(s) != 64 && len(s) != 128 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
