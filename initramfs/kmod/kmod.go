// Package kmod finds kernel modules and their dependencies for the initrd
// (from each module's own .modinfo, since distribution kernel packages may
// ship no modules.dep) and loads them in the init with finit_module.
package kmod

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Module is one kernel module file.
type Module struct {
	Name    string   // canonical name ('-' folded to '_')
	Path    string   // file path
	Depends []string // modules that must be loaded first
	Aliases []string // its .modinfo aliases: modalias patterns, fs-NAME, ...
}

// Index maps module names to module files of one kernel.
type Index struct {
	modules map[string]string // name -> path
	builtin map[string]bool
}

// CanonicalName folds '-' to '_', as the kernel treats them alike.
func CanonicalName(name string) string { return strings.ReplaceAll(name, "-", "_") }

func moduleName(file string) (string, bool) {
	base := filepath.Base(file)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(base, ext) {
			return CanonicalName(strings.TrimSuffix(base, ext)), true
		}
	}
	return "", false
}

// NewIndex indexes the modules below dir (a /lib/modules/<version>
// directory), and the built-in module list when present.
func NewIndex(dir string) (*Index, error) {
	ix := &Index{modules: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := moduleName(p); ok && !d.IsDir() {
			ix.modules[name] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel modules %s: %w", dir, err)
	}
	if len(ix.modules) == 0 {
		return nil, fmt.Errorf("kernel modules %s: no modules found", dir)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(data)) {
			if name, ok := moduleName(line); ok {
				ix.builtin[name] = true
			}
		}
	}
	return ix, nil
}

// Has reports whether name is a loadable module of this kernel (not built in).
func (ix *Index) Has(name string) bool {
	_, ok := ix.modules[CanonicalName(name)]
	return ok
}

// Resolve returns the modules named and everything they depend on, each
// after its dependencies, in a stable order. Built-in modules are skipped.
func (ix *Index) Resolve(names []string) ([]Module, error) {
	var out []Module
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		name = CanonicalName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("module %s: dependency cycle", name)
		case 2:
			return nil
		}
		path, ok := ix.modules[name]
		if !ok {
			if ix.builtin[name] {
				state[name] = 2
				return nil
			}
			if neededBy != "" {
				return fmt.Errorf("module %s (needed by %s) not found", name, neededBy)
			}
			return fmt.Errorf("module %s not found", name)
		}
		state[name] = 1
		info, err := ReadModinfo(path)
		if err != nil {
			return err
		}
		deps := info.Dependencies()
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		// Soft dependencies may name aliases or built-in code: include
		// the ones that are module files here, skip the rest.
		for _, d := range info.SoftPre() {
			if _, ok := ix.modules[d]; ok && state[d] == 0 {
				if err := visit(d, name); err != nil {
					return err
				}
				deps = append(deps, d)
			}
		}
		state[name] = 2
		out = append(out, Module{Name: name, Path: path, Depends: deps, Aliases: info["alias"]})
		return nil
	}
	sorted := append([]string{}, names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Modinfo is a module's .modinfo section: key=value pairs, keys repeating.
type Modinfo map[string][]string

// Dependencies are the modules that must be loaded first.
func (m Modinfo) Dependencies() []string {
	var deps []string
	for _, list := range m["depends"] {
		for _, d := range strings.Split(list, ",") {
			if d != "" {
				deps = append(deps, CanonicalName(d))
			}
		}
	}
	return deps
}

// SoftPre are the "pre:" soft dependencies: modules (or aliases) the module
// would like loaded before it, such as a crypto implementation.
func (m Modinfo) SoftPre() []string {
	var deps []string
	for _, soft := range m["softdep"] {
		pre := false
		for _, w := range strings.Fields(soft) {
			switch w {
			case "pre:":
				pre = true
			case "post:":
				pre = false
			default:
				if pre {
					deps = append(deps, CanonicalName(w))
				}
			}
		}
	}
	return deps
}

// ReadModinfo reads the .modinfo section of a module file, decompressing
// .ko.xz and .ko.zst.
func ReadModinfo(path string) (Modinfo, error) {
	raw, err := ReadModule(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	f, err := elf.NewFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: .modinfo: %w", path, err)
	}
	info := Modinfo{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			info[k] = append(info[k], v)
		}
	}
	return info, nil
}

// ReadModule reads a module file, decompressing .ko.xz and .ko.zst.
func ReadModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	switch {
	case strings.HasSuffix(path, ".xz"):
		if r, err = xz.NewReader(r); err != nil {
			return nil, err
		}
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	return io.ReadAll(r)
}
