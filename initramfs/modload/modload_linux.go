// Package modload loads the kernel modules an initrd carries, in the order
// the builder wrote, with finit_module.
package modload

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/layout"
)

// LoadAll loads the modules dir/load.order lists, in order, with
// finit_module; compressed modules are decompressed by the kernel. A module
// that is already loaded (or built in) is fine. It returns the names loaded.
func LoadAll(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, layout.LoadOrder))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // an initrd without modules
	}
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	defer f.Close()
	var loaded []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" {
			continue
		}
		if err := load(filepath.Join(dir, rel)); err != nil {
			return loaded, err
		}
		loaded = append(loaded, rel)
	}
	return loaded, sc.Err()
}

func load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	switch err := unix.FinitModule(int(f.Fd()), "", flags); {
	case err == nil, errors.Is(err, unix.EEXIST):
		return nil
	case errors.Is(err, unix.ENOEXEC):
		return fmt.Errorf("module %s: not a module for this kernel (%w)", path, err)
	case errors.Is(err, unix.EINVAL) && flags != 0:
		return fmt.Errorf("module %s: the kernel cannot decompress it (needs CONFIG_MODULE_DECOMPRESS) or it is invalid: %w", path, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("module %s: unknown symbol or missing dependency (load order wrong?): %w", path, err)
	default:
		return fmt.Errorf("module %s: finit_module: %w", path, err)
	}
}
