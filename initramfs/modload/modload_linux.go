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
	dir   string
	sys   string // where sysfs is mounted
	finit func(path string) error
	order []string // load.order
	rules map[string]Module
	// byBus holds the aliases by the bus their devices sit on: the text
	// before the first ':', a trailing '*' dropped (acpi*:... is acpi's).
	// Only those buses are scanned. Aliases whose bus is a pattern, and
	// device tree ones (their devices sit on any bus), are in anyBus, and
	// make every bus scanned.
	byBus  map[string][]alias
	anyBus []alias
	loaded map[string]bool
	seen   map[string]bool // devices whose modalias was read
	log    func(string)
}

type alias struct{ pattern, module string }

// Open reads the module list and rules of the initrd's module directory;
// log (nil for none) hears what loads and why. A rules file that does not
// parse is logged, and then every module loads.
func Open(dir string, log func(string)) (*Loader, error) {
	return open(dir, "/sys", load, log)
}

// open is Open with the sysfs mount and the module loader as parameters,
// for tests.
func open(dir, sys string, finit func(path string) error, log func(string)) (*Loader, error) {
	if log == nil {
		log = func(string) {}
	}
	l := &Loader{dir: dir, sys: sys, finit: finit, loaded: map[string]bool{}, seen: map[string]bool{}, log: log}
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
	_, err = os.Stat(l.sys + "/firmware/devicetree")
	deviceTree := err == nil
	for _, m := range mods {
		l.rules[m.File] = m
		for _, p := range m.Aliases {
			a := alias{p, m.File}
			bus, _, _ := strings.Cut(p, ":")
			bus = strings.TrimSuffix(bus, "*")
			switch {
			case bus == "of" && !deviceTree: // no device has such a modalias
			case bus == "of", strings.ContainsAny(bus, `*?[\`):
				l.anyBus = append(l.anyBus, a)
			default:
				l.byBus[bus] = append(l.byBus[bus], a)
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
	_, err := os.Stat(l.sys + "/firmware/efi")
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
		for _, list := range [][]alias{l.byBus[d.bus], l.anyBus} {
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
		if r, ok := want[f]; ok { // its own reason, whichever comes first
			reason = r
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
		if err := l.finit(filepath.Join(l.dir, f)); err != nil {
			return true, err
		}
		l.loaded[f] = true
		l.log("module " + f + " (" + reason + "): " + strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 1, 64) + " ms")
	}
	for f := range why {
		if !l.loaded[f] {
			return true, errors.New("module " + f + ": the rules name it, " + layout.LoadOrder + " does not")
		}
	}
	return len(why) > 0, nil
}

// device is a device's modalias, the bus it sits on and its sysfs path.
type device struct{ bus, path, modalias string }

// newModaliases reads the modalias of every device not read before on the
// buses that have aliases (on every bus if some alias may sit anywhere).
// sysfs is slow to walk under emulation: a q35 machine has some 200
// devices, most on buses no initrd module drives.
func (l *Loader) newModaliases() []device {
	var buses []string
	if len(l.anyBus) > 0 {
		dirs, _ := os.ReadDir(l.sys + "/bus")
		for _, d := range dirs {
			buses = append(buses, d.Name())
		}
	} else {
		for bus := range l.byBus {
			buses = append(buses, bus)
		}
	}
	var found []device
	buf := make([]byte, 4096) // a sysfs attribute is at most a page
	for _, bus := range buses {
		dir := l.sys + "/bus/" + bus + "/devices/"
		devs, _ := os.ReadDir(dir)
		for _, d := range devs {
			p := dir + d.Name()
			if l.seen[p] {
				continue
			}
			l.seen[p] = true
			if m := readAttr(p+"/modalias", buf); m != "" {
				found = append(found, device{bus, p, m})
			}
		}
	}
	return found
}

// readAttr reads a sysfs attribute with three system calls (os.ReadFile
// takes five); "" when it cannot.
func readAttr(path string, buf []byte) string {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(buf[:n]))
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
	// Drivers probe synchronously (no async_probe, although ahci's port
	// probes take 400 ms under TCG): the root device is chosen from the
	// disks present when the modules are in, and a second disk with the
	// root's label must be among them to be refused.
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return nil
	}
	why := "finit_module"
	switch {
	case errors.Is(err, unix.ENOEXEC):
		why = "not a module for this kernel"
	case errors.Is(err, unix.EINVAL) && flags != 0:
		why = "the kernel cannot decompress it (needs CONFIG_MODULE_DECOMPRESS) or it is invalid"
	case errors.Is(err, unix.ENOENT):
		why = "unknown symbol or missing dependency (load order wrong?)"
	}
	return fmt.Errorf("module %s: %s: %w", path, why, err)
}
