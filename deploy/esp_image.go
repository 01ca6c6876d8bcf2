package deploy

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
)

// ImageESP is a FAT filesystem inside a file (a disk image, the ESP
// starting at Offset bytes), changed with mtools: offline deploys to a
// disk file need no vfat driver and no mount. mtools writes each change
// through before it exits.
type ImageESP struct {
	Image  string
	Offset int64
}

func (e ImageESP) drive() string {
	if e.Offset == 0 {
		return e.Image
	}
	return fmt.Sprintf("%s@@%d", e.Image, e.Offset)
}

func (e ImageESP) mtools(stdin io.Reader, tool string, args ...string) ([]byte, error) {
	var out, errOut bytes.Buffer
	cmd := exec.Command(tool, append([]string{"-i", e.drive()}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errOut
	// The ESP sits at an offset in a disk image, whose size says nothing
	// of a floppy geometry; without this mtools refuses some such images.
	cmd.Env = append(cmd.Environ(), "MTOOLS_SKIP_CHECK=1")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("esp %s: %s %s: %w: %s", e.Image, tool, strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.Bytes(), nil
}

func (e ImageESP) List(dir string) ([]string, error) {
	// -b prints full paths, directories with a trailing slash.
	out, err := e.mtools(nil, "mdir", "-b", "-a", "::"+dir)
	if err != nil {
		// mdir fails for a missing directory; tell that from a broken image.
		if _, rootErr := e.mtools(nil, "mdir", "-b", "::/"); rootErr != nil {
			return nil, rootErr
		}
		return nil, nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasSuffix(line, "/") {
			continue
		}
		names = append(names, path.Base(line))
	}
	return names, nil
}

func (e ImageESP) ReadFile(name string) ([]byte, error) {
	return e.mtools(nil, "mtype", "::"+name)
}

func (e ImageESP) Put(name string, src io.Reader) error {
	tmp := tempName(name)
	if _, err := e.mtools(src, "mcopy", "-o", "-", "::"+tmp); err != nil {
		return err
	}
	// mmove's -D o replaces an existing target (mtools(1), name clashes).
	if _, err := e.mtools(nil, "mmove", "-D", "o", "::"+tmp, "::"+name); err != nil {
		return err
	}
	return nil
}

func (e ImageESP) Rename(from, to string) error {
	_, err := e.mtools(nil, "mmove", "::"+from, "::"+to)
	return err
}

func (e ImageESP) Remove(name string) error {
	_, err := e.mtools(nil, "mdel", "::"+name)
	return err
}

func (e ImageESP) MkdirAll(dir string) error {
	var parts []string
	for d := path.Clean(dir); d != "." && d != "/"; d = path.Dir(d) {
		parts = append([]string{d}, parts...)
	}
	for _, d := range parts {
		if _, err := e.mtools(nil, "mdir", "-b", "::"+d); err == nil {
			continue
		}
		if _, err := e.mtools(nil, "mmd", "::"+d); err != nil {
			return err
		}
	}
	return nil
}
