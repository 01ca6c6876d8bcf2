package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"cfsboot/internal/fdio"
	"cfsboot/internal/parallel"
	"cfsboot/verity"
)

// Problem is one inconsistency Fsck found.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	// Garbage: provably useless (a temporary file of an interrupted
	// write, a file in objects/ whose name is not its digest); Repair
	// removes it.
	Garbage bool `json:"garbage,omitempty"`
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// Fsck checks the store without writing to it: every image is named by
// its digest and readable, every object an image or stream references
// exists with the digest the image expects, every object is named by its
// digest, every ref names an image, and either every file is sealed with
// fs-verity or none is. Temporary files count as garbage only under the
// exclusive lock; under a shared one they may be another writer's.
func (s *Store) Fsck() ([]Problem, error) {
	problems, _, err := s.fsck(nil)
	return problems, err
}

// FsckProgress is Fsck calling progress (from several goroutines) with
// the number of files read so far and the number to read.
func (s *Store) FsckProgress(progress func(done, total int)) ([]Problem, error) {
	problems, _, err := s.fsck(progress)
	return problems, err
}

func (s *Store) fsck(progress func(done, total int)) ([]Problem, *roots, error) {
	r, err := s.roots()
	if err != nil {
		return nil, nil, err
	}
	c := checker{s: s}
	c.problems = append(append(append(c.problems, r.unreadable...), r.broken...), r.misdirected...)
	for obj, users := range r.users {
		path := filepath.Join(s.dir, "objects", obj)
		if !exists(path) {
			sort.Strings(users)
			c.add(Problem{Path: path, Reason: "missing (referenced by " + strings.Join(users, ", ") + ")"})
		}
	}
	var files []namedFile
	for _, img := range r.images {
		if !isSymlink(img) { // a symlinked image is checked as an object
			files = append(files, namedFile{img, filepath.Base(img), false})
		}
	}
	objects, err := s.objectFiles(&c)
	if err != nil {
		return nil, nil, err
	}
	files = append(files, objects...)
	var done atomic.Int64
	parallel.Each(files, runtime.GOMAXPROCS(0), func(f namedFile) error {
		err := c.checkName(f)
		if progress != nil {
			progress(int(done.Add(1)), len(files))
		}
		return err
	})
	c.sealingProblems()
	sort.Slice(c.problems, func(i, j int) bool { return c.problems[i].Path < c.problems[j].Path })
	return c.problems, r, nil
}

type checker struct {
	s        *Store
	mu       sync.Mutex
	problems []Problem
	sealed   []string
	unsealed []string
}

func (c *checker) add(p Problem) {
	c.mu.Lock()
	c.problems = append(c.problems, p)
	c.mu.Unlock()
}

// objectFiles lists the files below objects/ named like objects and
// records the others: temporary files (garbage only when nobody else can
// be writing) and misnamed files.
func (s *Store) objectFiles(c *checker) ([]namedFile, error) {
	base := filepath.Join(s.dir, "objects")
	top, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// A writer's temporary file (in objects/, or a reflink's beside its
	// object's name).
	temporary := func(path string) {
		if s.lock == Exclusive {
			c.add(Problem{Path: path, Reason: "temporary file of an interrupted write", Garbage: true})
		}
	}
	var files []namedFile
	for _, e := range top {
		path := filepath.Join(base, e.Name())
		if !e.IsDir() {
			if strings.HasPrefix(e.Name(), tempPrefix) {
				temporary(path)
			} else {
				c.add(Problem{Path: path, Reason: "not an object"})
			}
			continue
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		for _, o := range entries {
			p := filepath.Join(path, o.Name())
			switch {
			case o.IsDir():
				c.add(Problem{Path: p, Reason: "directory among objects"})
			case strings.HasPrefix(o.Name(), tempPrefix):
				temporary(p)
			case !validObjectPath(e.Name() + "/" + o.Name()):
				c.add(Problem{Path: p, Reason: "not named by an fs-verity digest", Garbage: true})
			default:
				// The path is made again from the name when checked: a
				// million objects' paths would be most of fsck's memory.
				files = append(files, namedFile{name: e.Name() + o.Name(), object: true})
			}
		}
	}
	if s.lock == Exclusive {
		refs := filepath.Join(s.dir, "images", "refs")
		filepath.WalkDir(refs, func(path string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), tempPrefix) {
				c.add(Problem{Path: path, Reason: "temporary ref of an interrupted write", Garbage: true})
			}
			return nil
		})
	}
	return files, nil
}

// namedFile is an object or image and the digest its name gives.
type namedFile struct {
	path   string // images only; an object's is its name's
	name   string
	object bool // a misnamed object is garbage; a misnamed image is not
}

// checkName compares a file's fs-verity digest, in the store's
// algorithm, with its name: the kernel's digest for a sealed file (sealed
// with that algorithm), the content's for another.
func (c *checker) checkName(f namedFile) error {
	path, alg := f.path, c.s.alg
	if f.object {
		path = filepath.Join(c.s.dir, "objects", f.name[:2], f.name[2:])
	}
	want, err := verity.ParseSumAlgorithm(alg, f.name)
	if err != nil {
		c.add(Problem{Path: path, Reason: fmt.Sprintf("not named by a %s digest, the store's algorithm", alg)})
		return nil
	}
	got, sealed, err := fileDigest(path, alg)
	garbage := f.object
	switch {
	case err != nil:
		c.add(Problem{Path: path, Reason: err.Error()})
		return nil
	case got.Algorithm() != alg:
		c.add(Problem{Path: path, Reason: fmt.Sprintf("sealed with fs-verity %s, the store names files by %s", got.Algorithm(), alg)})
		return nil
	case got != want:
		c.add(Problem{Path: path, Reason: fmt.Sprintf("content has fs-verity digest %s, not its name", got), Garbage: garbage})
		return nil
	}
	c.mu.Lock()
	if sealed {
		c.sealed = append(c.sealed, path)
	} else {
		c.unsealed = append(c.unsealed, path)
	}
	c.mu.Unlock()
	return nil
}

// sealingProblems: in a store where some files carry fs-verity, the
// kernel will refuse (verity=require) the ones that do not.
func (c *checker) sealingProblems() {
	if len(c.sealed) == 0 {
		return
	}
	for _, p := range c.unsealed {
		c.problems = append(c.problems, Problem{Path: p, Reason: "not sealed with fs-verity, while other files in this store are"})
	}
}

// fileDigest returns a file's fs-verity digest: the kernel's when the file
// is sealed (sealed true, in the algorithm it was sealed with), else
// computed from its content with alg.
func fileDigest(path string, alg verity.Algorithm) (d verity.Sum, sealed bool, err error) {
	// A bare descriptor: fsck opens every object (package fdio says why).
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return d, false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	d, err = verity.MeasureSum(fd)
	if err == nil {
		return d, true, nil
	}
	if !errors.Is(err, verity.ErrNotEnabled) && !errors.Is(err, verity.ErrNotSupported) {
		return d, false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return d, false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	d, err = alg.ComputeReaderAt(fdio.File(fd), st.Size)
	return d, false, err
}

func isSymlink(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode()&os.ModeSymlink != 0
}

// Repair removes what Fsck proves to be garbage and returns what it
// removed and the problems that remain, among them every image that
// needed a removed object: such an image cannot be repaired, only made
// again. It needs the exclusive lock.
func (s *Store) Repair() (removed []string, remaining []Problem, err error) {
	if s.lock != Exclusive {
		return nil, nil, fmt.Errorf("store %s: repair needs the exclusive lock", s.dir)
	}
	problems, r, err := s.fsck(nil)
	if err != nil {
		return nil, nil, err
	}
	base := filepath.Join(s.dir, "objects") + "/"
	for _, p := range problems {
		if !p.Garbage {
			remaining = append(remaining, p)
			continue
		}
		if err := os.Remove(p.Path); err != nil {
			return removed, remaining, fmt.Errorf("store repair: %w", err)
		}
		removed = append(removed, p.Path)
		for _, user := range r.users[strings.TrimPrefix(p.Path, base)] {
			remaining = append(remaining, Problem{Path: user, Reason: fmt.Sprintf("needs %s, which was damaged and is removed: make this image again", p.Path)})
		}
	}
	sort.Slice(remaining, func(i, j int) bool { return remaining[i].Path < remaining[j].Path })
	return removed, remaining, nil
}
