// Package modload loads the kernel modules an initrd carries with
// finit_module: those the machine needs, found as udev finds them (a
// device's modalias matching a module's alias), or all of them in the
// order the builder wrote.
package modload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/layout"
)

// LoadAll loads the modules dir/load.order lists, in order, with
// finit_module; compressed modules are decompressed by the kernel. A module
// that is already loaded (or built in) is fine.
func LoadAll(dir string) error {
	l, err := Open(dir, nil)
	if err != nil {
		return err
	}
	return l.LoadRest("every module")
}

// Loader loads an initrd's modules as the machine needs them: the rules
// file (layout.LoadRules) says which load by themselves and which drive
// devices of which modalias; each module comes after its dependencies, in
// load.order's order. Without a rules file it loads everything.
type Loader struct {
	dir    string
	order  []string // load.order
	rules  map[string]Module
	byBus  map[string][]alias // aliases whose bus (before the first ':') is literal
	anyBus []alias            // the others (acpi*:...)
	loaded map[string]bool
	seen   map[string]bool // devices whose modalias was read
	log    func(string)
}

type alias struct{ pattern, module string }

// Open reads the module list and rules of the initrd's module directory;
// log (nil for none) hears what loads and why. A rules file that does not
// parse or names modules load.order lacks is logged, and then every
// module loads.
func Open(dir string, log func(string)) (*Loader, error) {
	if log == nil {
		log = func(string) {}
	}
	l := &Loader{dir: dir, loaded: map[string]bool{}, seen: map[string]bool{}, log: log}
	order, err := os.ReadFile(filepath.Join(dir, layout.LoadOrder))
	if errors.Is(err, os.ErrNotExist) {
		return l, nil // an initrd without modules
	}
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	l.order = strings.Fields(string(order)) // file names, one a line
	rules, err := os.ReadFile(filepath.Join(dir, layout.LoadRules))
	if err == nil {
		err = l.setRules(rules)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log("modules: " + layout.LoadRules + ": " + err.Error() + ": loading every module")
		l.rules, l.byBus, l.anyBus = nil, nil, nil
	}
	return l, nil
}

func (l *Loader) setRules(data []byte) error {
	mods, err := ParseRules(data)
	if err != nil {
		return err
	}
	l.rules = map[string]Module{}
	l.byBus = map[string][]alias{}
	for _, m := range mods {
		for _, f := range append([]string{m.File}, m.Depends...) {
			if !slices.Contains(l.order, f) {
				return errors.New("module " + f + " is not in " + layout.LoadOrder)
			}
		}
		l.rules[m.File] = m
		for _, p := range m.Aliases {
			a := alias{p, m.File}
			if bus, _, ok := strings.Cut(p, ":"); ok && !strings.ContainsAny(bus, `*?[\`) {
				l.byBus[bus] = append(l.byBus[bus], a)
			} else {
				l.anyBus = append(l.anyBus, a)
			}
		}
	}
	return nil
}

// Start loads the modules that load by themselves (filesystems; efivarfs
// under UEFI), then the drivers of the devices present, again and again
// while loading drivers makes new devices appear (a disk controller, then
// its disks).
func (l *Loader) Start() error {
	if l.rules == nil {
		return l.LoadRest("the initrd has no module rules")
	}
	_, err := os.Stat("/sys/firmware/efi")
	efi := err == nil
	want := map[string]string{}
	for _, f := range l.order {
		switch m := l.rules[f]; {
		case m.When == Always:
			want[f] = "always"
		case m.When == EFI && efi:
			want[f] = "UEFI firmware"
		}
	}
	more, err := l.load(want)
	for more && err == nil {
		more, err = l.Rescan()
	}
	return err
}

// Rescan loads the drivers of the devices that appeared since the last
// scan, and reports whether it loaded any.
func (l *Loader) Rescan() (bool, error) {
	if l.rules == nil {
		return false, nil
	}
	want := map[string]string{}
	for _, d := range l.newModaliases() {
		bus, _, _ := strings.Cut(d.modalias, ":")
		for _, list := range [][]alias{l.byBus[bus], l.anyBus} {
			for _, a := range list {
				if _, ok := want[a.module]; !ok && !l.loaded[a.module] && Match(a.pattern, d.modalias) {
					want[a.module] = d.path + " " + d.modalias
				}
			}
		}
	}
	return l.load(want)
}

// LoadRest loads every module not loaded yet, in load.order's order: the
// fail-safe when the root device does not show up, and the whole job
// without rules. why (logged when there is anything to load) is the
// reason of each.
func (l *Loader) LoadRest(why string) error {
	want := map[string]string{}
	for _, f := range l.order {
		if !l.loaded[f] {
			want[f] = why
		}
	}
	if len(want) > 0 {
		l.log("loading the " + strconv.Itoa(len(want)) + " remaining modules: " + why)
	}
	_, err := l.load(want)
	return err
}

// load loads the modules of want (file -> why) and their dependencies,
// in load.order's order, logging each with its reason and time. It
// reports whether it loaded any.
func (l *Loader) load(want map[string]string) (bool, error) {
	why := map[string]string{}
	var add func(f, reason string)
	add = func(f, reason string) {
		if _, ok := why[f]; ok || l.loaded[f] {
			return
		}
		why[f] = reason
		for _, d := range l.rules[f].Depends {
			add(d, "needed by "+f)
		}
	}
	for f, reason := range want {
		add(f, reason)
	}
	for _, f := range l.order {
		reason, ok := why[f]
		if !ok {
			continue
		}
		start := time.Now()
		if err := load(filepath.Join(l.dir, f)); err != nil {
			return true, err
		}
		l.loaded[f] = true
		l.log("module " + f + " (" + reason + "): " + strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 1, 64) + " ms")
	}
	return len(why) > 0, nil
}

// device is a device's modalias and where it was read.
type device struct{ path, modalias string }

// newModaliases reads the modalias of every device on every bus not read
// before.
func (l *Loader) newModaliases() []device {
	var found []device
	buses, _ := os.ReadDir("/sys/bus")
	for _, b := range buses {
		dir := "/sys/bus/" + b.Name() + "/devices/"
		devs, _ := os.ReadDir(dir)
		for _, d := range devs {
			p := dir + d.Name()
			if l.seen[p] {
				continue
			}
			l.seen[p] = true
			if data, err := os.ReadFile(p + "/modalias"); err == nil {
				if m := strings.TrimSpace(string(data)); m != "" {
					found = append(found, device{p, m})
				}
			}
		}
	}
	return found
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
