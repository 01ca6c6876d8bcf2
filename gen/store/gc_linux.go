package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// GC removes objects that no image or stream references, and temporary
// files, which the exclusive lock proves abandoned. It removes no image,
// stream or ref. An image or stream it cannot read stops it: what that
// one keeps alive is unknown. With dryRun it only reports.
func (s *Store) GC(dryRun bool) (removed []string, freed int64, err error) {
	if s.lock != Exclusive {
		return nil, 0, fmt.Errorf("store %s: gc needs the exclusive lock", s.dir)
	}
	r, err := s.roots()
	if err != nil {
		return nil, 0, err
	}
	if len(r.unreadable) > 0 {
		return nil, 0, fmt.Errorf("store gc: refusing to collect: %s (what it references is unknown)", r.unreadable[0])
	}
	add := func(path string) {
		if st, err := os.Lstat(path); err == nil {
			freed += st.Size()
		}
		removed = append(removed, path)
	}
	base := filepath.Join(s.dir, "objects")
	top, err := os.ReadDir(base)
	if err != nil {
		return nil, 0, fmt.Errorf("store gc: %w", err)
	}
	for _, e := range top {
		if !e.IsDir() {
			if strings.HasPrefix(e.Name(), tempPrefix) {
				add(filepath.Join(base, e.Name()))
			}
			continue
		}
		entries, err := os.ReadDir(filepath.Join(base, e.Name()))
		if err != nil {
			return nil, 0, fmt.Errorf("store gc: %w", err)
		}
		for _, o := range entries {
			rel := e.Name() + "/" + o.Name()
			if !o.IsDir() && (strings.HasPrefix(o.Name(), tempPrefix) || validObjectPath(rel) && len(r.users[rel]) == 0) {
				add(filepath.Join(base, rel))
			}
		}
	}
	filepath.WalkDir(filepath.Join(s.dir, "images", "refs"), func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), tempPrefix) {
			add(path)
		}
		return nil
	})
	sort.Strings(removed)
	if dryRun {
		return removed, freed, nil
	}
	for _, p := range removed {
		if err := os.Remove(p); err != nil {
			return removed, freed, fmt.Errorf("store gc: %w", err)
		}
	}
	return removed, freed, nil
}
