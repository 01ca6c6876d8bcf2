// Package build writes the initrd for cfsboot-init: a deterministic newc
// cpio (same inputs, same bytes) holding the init, the kernel modules it
// needs with their load order, the console device, and optionally a debug
// shell and extra command line words, compressed for the kernel.
package build

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"

	"cfsboot/initramfs/kmod"
	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/modload"
	"cfsboot/initramfs/setuproot"
)

// initNeeds are the modules cfsboot-init itself uses, added whenever the
// kernel has them as modules: efivarfs, to read systemd-stub's
// measurement marks and the Secure Boot state.
var initNeeds = []string{"efivarfs"}

// initDecides says when the modules the init itself knows about load,
// whatever their aliases say.
var initDecides = map[string]string{
	// Only UEFI firmware has EFI variables.
	"efivarfs": modload.EFI,
	// cfsboot-init mounts EROFS images from files (Linux 6.12's
	// file-backed EROFS) and needs no loop device: loop loads only with
	// the fail-safe.
	"loop": "",
}

// loadsWhen is when a module loads by itself: a requested module that
// drives no device (a filesystem) always; a driver when a device matches
// one of its aliases; a dependency only as one.
func loadsWhen(name string, requested bool, deviceAliases []string) string {
	if when, ok := initDecides[name]; ok {
		return when
	}
	if requested && len(deviceAliases) == 0 {
		return modload.Always
	}
	return ""
}

// deviceAliases keeps the aliases that can match a device's modalias
// (bus:...): not fs-NAME, char-major-N-M, devname:NAME and the like,
// which name what the kernel asks modprobe for, and none the rules file
// cannot hold (white space, other than printable ASCII: no modalias has
// them).
func deviceAliases(aliases []string) []string {
	var out []string
	for _, a := range aliases {
		if strings.Contains(a, ":") && !strings.HasPrefix(a, "devname:") && modload.CheckPattern(a) == nil {
			out = append(out, a)
		}
	}
	return out
}

// busyboxPath is where the debug shell's busybox lives; layout.ShellPath
// links to it.
const busyboxPath = "bin/busybox"

// Spec describes an initrd.
type Spec struct {
	Init       string   // the init binary (cfsboot-init)
	ModulesDir string   // a /lib/modules/<version> tree; "" for no modules
	Modules    []string // module names; their dependencies are added
	Busybox    string   // busybox-static binary for the debug shell; "" for none
	// AllowShellUnderSecureBoot lets the debug shell start when UEFI
	// Secure Boot is enabled (without it, rd.shell and rd.break are refused
	// there); needs Busybox.
	AllowShellUnderSecureBoot bool
	// AllowInsecure lets the init boot '?' (fs-verity optional) command
	// line entries, measured as composefs-insecure:<hex>.
	AllowInsecure bool
	// SetupRootConf is a composefs-setup-root configuration (TOML) for
	// /usr/lib/composefs/setup-root-conf.toml; nil for none (its defaults).
	SetupRootConf []byte
	Cmdline       string // extra kernel command line words for the init; "" for none
	Compression   string // zstd (default), gzip, xz or none
	Epoch         uint64 // mtime of every entry (SOURCE_DATE_EPOCH)
}

// Result says what went into the archive.
type Result struct {
	Modules    []string // in load order
	Size       int64    // compressed bytes written
	Uncompress int64    // cpio bytes
}

// Build writes the compressed archive to w.
func Build(w io.Writer, s Spec) (Result, error) {
	var res Result
	files := map[string]cpio.Record{}
	add := func(name string, data []byte, mode uint64) {
		files[name] = cpio.StaticRecord(data, cpio.Info{Name: name, Mode: mode})
	}
	init, err := os.ReadFile(s.Init)
	if err != nil {
		return res, fmt.Errorf("initrd: init binary: %w", err)
	}
	add("init", init, cpio.S_IFREG|0o755)
	files["dev/console"] = cpio.CharDev("dev/console", 0o600, 5, 1)
	files["dev/null"] = cpio.CharDev("dev/null", 0o666, 1, 3)
	if s.ModulesDir != "" && len(s.Modules) > 0 {
		ix, err := kmod.NewIndex(s.ModulesDir)
		if err != nil {
			return res, fmt.Errorf("initrd: %w", err)
		}
		names := slices.Clone(s.Modules)
		for _, m := range initNeeds {
			if ix.Has(m) && !slices.Contains(names, m) {
				names = append(names, m)
			}
		}
		mods, err := ix.Resolve(names)
		if err != nil {
			return res, fmt.Errorf("initrd: %w", err)
		}
		var order strings.Builder
		var rules []modload.Module
		files := map[string]string{} // module name -> file in the initrd
		for _, m := range mods {
			// Stored decompressed: the initrd's compression covers them,
			// and finit_module need not unpack each one (xz in the
			// kernel was most of the init's module stage under TCG).
			data, err := kmod.ReadModule(m.Path)
			if err != nil {
				return res, fmt.Errorf("initrd: module %s: %w", m.Path, err)
			}
			base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(m.Path), ".xz"), ".zst")
			add(path.Join(layout.ModulesDir, base), data, cpio.S_IFREG|0o644)
			order.WriteString(base + "\n")
			res.Modules = append(res.Modules, m.Name)
			files[m.Name] = base
			aliases := deviceAliases(m.Aliases)
			r := modload.Module{File: base, When: loadsWhen(m.Name, slices.Contains(names, m.Name), aliases), Aliases: aliases}
			for _, d := range m.Depends {
				if f, ok := files[d]; ok { // else built in
					r.Depends = append(r.Depends, f)
				}
			}
			rules = append(rules, r)
		}
		add(path.Join(layout.ModulesDir, layout.LoadOrder), []byte(order.String()), cpio.S_IFREG|0o644)
		data, err := modload.MarshalRules(rules)
		if err != nil {
			return res, fmt.Errorf("initrd: module rules: %w", err)
		}
		add(path.Join(layout.ModulesDir, layout.LoadRules), data, cpio.S_IFREG|0o644)
	}
	if s.Busybox != "" {
		bb, err := os.ReadFile(s.Busybox)
		if err != nil {
			return res, fmt.Errorf("initrd: debug shell: %w", err)
		}
		add(busyboxPath, bb, cpio.S_IFREG|0o755)
		files[layout.ShellPath] = cpio.Symlink(layout.ShellPath, "busybox")
	}
	if s.AllowShellUnderSecureBoot {
		if s.Busybox == "" {
			return res, fmt.Errorf("initrd: allowing the debug shell under Secure Boot needs a shell (busybox)")
		}
		add(layout.ShellUnderSecureBoot, []byte("the debug shell may start under UEFI Secure Boot\n"), cpio.S_IFREG|0o644)
	}
	if s.AllowInsecure {
		add(layout.AllowInsecure, []byte("composefs images may boot without fs-verity ('?' command line entries)\n"), cpio.S_IFREG|0o644)
	}
	if s.SetupRootConf != nil {
		// Checked here with the init's own parser: a file it cannot read
		// would fail every boot.
		if _, err := setuproot.Parse(s.SetupRootConf); err != nil {
			return res, fmt.Errorf("initrd: setup-root configuration: %w", err)
		}
		add(layout.SetupRootConf, s.SetupRootConf, cpio.S_IFREG|0o644)
	}
	if s.Cmdline != "" {
		add(layout.CmdlineFile, []byte(strings.TrimSpace(s.Cmdline)+"\n"), cpio.S_IFREG|0o644)
	}
	for _, d := range []string{"proc", "sys", "run", "dev"} {
		files[d] = cpio.Directory(d, 0o755)
	}
	archive, err := writeCpio(files, s.Epoch)
	if err != nil {
		return res, err
	}
	res.Uncompress = int64(len(archive))
	cw := &countingWriter{w: w}
	if err := compress(cw, archive, s.Compression); err != nil {
		return res, err
	}
	res.Size = cw.n
	return res, nil
}

// writeCpio writes every record, and every parent directory explicitly
// (0755), sorted by name, with fixed owners, times and inode numbers.
func writeCpio(files map[string]cpio.Record, epoch uint64) ([]byte, error) {
	for name := range files {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := files[d]; !ok {
				files[d] = cpio.Directory(d, 0o755)
			}
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	for i, n := range names {
		r := files[n]
		r.Info.Ino = uint64(i + 1)
		r.Info.UID, r.Info.GID, r.Info.MTime = 0, 0, epoch
		r.Info.NLink = 1
		r.Info.Dev, r.Info.Major, r.Info.Minor = 0, 0, 0
		if err := w.WriteRecord(r); err != nil {
			return nil, fmt.Errorf("initrd: cpio %s: %w", n, err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return nil, fmt.Errorf("initrd: cpio: %w", err)
	}
	return buf.Bytes(), nil
}

func compress(w io.Writer, data []byte, method string) error {
	var zw io.WriteCloser
	var err error
	switch method {
	case "", "zstd":
		zw, err = zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	case "gzip":
		zw, err = gzip.NewWriterLevel(w, gzip.BestCompression)
	case "xz":
		// The kernel's xz decoder only knows the CRC32 check.
		zw, err = xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(w)
	case "none":
		_, err = w.Write(data)
		return err
	default:
		return fmt.Errorf("initrd: unknown compression %q (zstd, gzip, xz, none)", method)
	}
	if err != nil {
		return fmt.Errorf("initrd: %s: %w", method, err)
	}
	if _, err := zw.Write(data); err != nil {
		return fmt.Errorf("initrd: %s: %w", method, err)
	}
	return zw.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
