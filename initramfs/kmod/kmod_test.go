package kmod

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianModules is the module tree of the VM kernel fetched by `make deps`.
func debianModules(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("../../.cache/debian/root/linux-image-*/usr/lib/modules/*")
	if len(dirs) == 0 {
		t.Skip("no Debian kernel modules under .cache/debian (run `make deps`)")
	}
	return dirs[0]
}

// TestResolveAgainstModinfo checks the dependency closure of the modules the
// initrd needs against kmod's own `modinfo -F depends` for each of them.
func TestResolveAgainstModinfo(t *testing.T) {
	dir := debianModules(t)
	ix, err := NewIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ix.Resolve([]string{"erofs", "overlay", "loop", "virtio-blk", "efivarfs", "btrfs"})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		pos[m.Name] = i
	}
	for _, want := range []string{"erofs", "overlay", "loop", "virtio_blk", "efivarfs", "btrfs"} {
		if _, ok := pos[want]; !ok {
			t.Errorf("%s missing from %v", want, pos)
		}
	}
	modinfo, err := exec.LookPath("modinfo")
	for _, m := range mods {
		for _, d := range m.Depends {
			if p, ok := pos[d]; ok && p > pos[m.Name] {
				t.Errorf("%s loads before its dependency %s", m.Name, d)
			}
		}
		if err != nil {
			continue
		}
		out, merr := exec.Command(modinfo, "-F", "depends", m.Path).Output()
		if merr != nil {
			t.Fatalf("modinfo %s: %v", m.Path, merr)
		}
		for _, d := range strings.Split(strings.TrimSpace(string(out)), ",") {
			if _, ok := pos[CanonicalName(d)]; d != "" && !ok {
				t.Errorf("%s depends on %s (modinfo) but the closure lacks it", m.Name, d)
			}
		}
	}
	if err != nil {
		t.Log("modinfo (kmod) not installed: checked load order only")
	}
}

func TestResolveErrors(t *testing.T) {
	ix, err := NewIndex(debianModules(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Resolve([]string{"no_such_module"}); err == nil || !strings.Contains(err.Error(), "no_such_module not found") {
		t.Errorf("missing module: %v", err)
	}
	if _, err := NewIndex(t.TempDir()); err == nil {
		t.Error("empty module dir accepted")
	}
}
