package disk

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
)

// ESPFile is one file to put on the ESP: Path is its path there
// ("EFI/BOOT/BOOTX64.EFI"), Source the host file to copy.
type ESPFile struct {
	Path   string
	Source string
}

// MakeFAT makes a FAT32 image of size bytes at image with mkfs.vfat and
// copies files into it with mtools (mmd, mcopy): no mounting, so the host
// needs no vfat driver.
func MakeFAT(image string, size int64, label string, files []ESPFile) error {
	os.Remove(image) // mkfs.vfat -C refuses an existing file
	if err := runTool("mkfs.vfat", "-F", "32", "-n", label, "-C", image, fmt.Sprint(size/1024)); err != nil {
		return err
	}
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted) // parents before children
	for _, d := range sorted {
		if err := runTool("mmd", "-i", image, "::"+d); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := runTool("mcopy", "-o", "-i", image, f.Source, "::"+f.Path); err != nil {
			return err
		}
	}
	return nil
}

// runTool runs an external tool, returning its output in the error.
func runTool(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
