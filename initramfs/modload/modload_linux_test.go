package modload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// machine is a fake sysfs and module directory; loading a module records
// it and may make devices appear, as a bus driver does.
type machine struct {
	t        *testing.T
	dir, sys string
	loaded   []string
	log      []string
	plugs    map[string]map[string]string // module -> devices (bus/name -> modalias) it makes appear
}

func newMachine(t *testing.T, order []string, rules string, devices map[string]string) *machine {
	m := &machine{t: t, dir: t.TempDir(), sys: t.TempDir(), plugs: map[string]map[string]string{}}
	write(t, filepath.Join(m.dir, "load.order"), strings.Join(order, "\n")+"\n")
	if rules != "" {
		write(t, filepath.Join(m.dir, "load.rules"), rules)
	}
	m.plug(devices)
	return m
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// plug adds devices: "bus/name" -> modalias ("" for a device without one).
func (m *machine) plug(devices map[string]string) {
	for dev, alias := range devices {
		bus, name, _ := strings.Cut(dev, "/")
		p := filepath.Join(m.sys, "bus", bus, "devices", name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			m.t.Fatal(err)
		}
		if alias != "" {
			write(m.t, filepath.Join(p, "modalias"), alias+"\n")
		}
	}
}

func (m *machine) open() *Loader {
	l, err := open(m.dir, m.sys, func(path string) error {
		name := filepath.Base(path)
		m.loaded = append(m.loaded, name)
		m.plug(m.plugs[name])
		return nil
	}, func(s string) { m.log = append(m.log, s) })
	if err != nil {
		m.t.Fatal(err)
	}
	return l
}

var testOrder = []string{"libcrc32c.ko", "erofs.ko", "overlay.ko", "loop.ko", "efivarfs.ko", "scsi_common.ko", "scsi_mod.ko", "libata.ko", "ahci.ko", "sd_mod.ko", "virtio_blk.ko", "nvme.ko", "tpm_tis.ko"}

const testRules = `always erofs.ko
depends erofs.ko libcrc32c.ko
always overlay.ko
efi efivarfs.ko
depends scsi_mod.ko scsi_common.ko
depends ahci.ko libata.ko scsi_mod.ko
alias ahci.ko pci:v*d*sv*sd*bc01sc06i01*
depends sd_mod.ko scsi_mod.ko scsi_common.ko
alias sd_mod.ko scsi:t-0x00*
alias sd_mod.ko scsi:t-0x0[47]*
alias virtio_blk.ko virtio:d00000002v*
alias nvme.ko pci:v*d*sv*sd*bc01sc08i02*
alias tpm_tis.ko acpi*:MSFT0101:*
alias tpm_tis.ko of:N*T*Ctcg,tpm-tis-mmio
`

// A q35 machine with an AHCI controller whose disk appears once ahci
// loads, and a virtio disk: filesystems first, then the drivers of the
// devices present, then the disk driver of the disk that appeared; never
// efivarfs (no UEFI), loop, nvme or the TPM driver (no such device).
func TestStartLoadsWhatTheMachineNeeds(t *testing.T) {
	m := newMachine(t, testOrder, testRules, map[string]string{
		"pci/0000:00:1f.2":      "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
		"pci/0000:00:01.0":      "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00",
		"virtio/virtio0":        "virtio:d00000002v00001AF4",
		"acpi/PNP0A08:00":       "acpi:PNP0A08:PNP0A03:",
		"platform/serial8250":   "platform:serial8250",
		"workqueue/writeback":   "",
		"scsi/host0":            "", // ahci's host: no modalias
		"acpi/LNXSYSTM:00":      "acpi:LNXSYSTM:",
		"clockevents/broadcast": "",
	})
	m.plugs["ahci.ko"] = map[string]string{"scsi/0:0:0:0": "scsi:t-0x00"}
	if err := m.open().Start(); err != nil {
		t.Fatal(err)
	}
	want := "libcrc32c.ko erofs.ko overlay.ko scsi_common.ko scsi_mod.ko libata.ko ahci.ko virtio_blk.ko sd_mod.ko"
	if got := strings.Join(m.loaded, " "); got != want {
		t.Errorf("loaded %s\nwant   %s\nlog:\n%s", got, want, strings.Join(m.log, "\n"))
	}
	for _, line := range []string{
		"module libcrc32c.ko (needed by erofs.ko)",
		"module erofs.ko (always)",
		"module ahci.ko (" + m.sys + "/bus/pci/devices/0000:00:1f.2 pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01)",
		"module sd_mod.ko (" + m.sys + "/bus/scsi/devices/0:0:0:0 scsi:t-0x00)",
	} {
		if !strings.Contains(strings.Join(m.log, "\n"), line) {
			t.Errorf("log lacks %q:\n%s", line, strings.Join(m.log, "\n"))
		}
	}
}

// Under UEFI efivarfs loads; a TPM on ACPI gets its driver; device tree
// aliases count only on device tree machines.
func TestStartConditions(t *testing.T) {
	m := newMachine(t, testOrder, testRules, map[string]string{"acpi/MSFT0101:00": "acpi:MSFT0101:"})
	if err := os.MkdirAll(filepath.Join(m.sys, "firmware", "efi"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.open().Start(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(m.loaded, " "), "libcrc32c.ko erofs.ko overlay.ko efivarfs.ko tpm_tis.ko"; got != want {
		t.Errorf("loaded %s, want %s", got, want)
	}

	m = newMachine(t, testOrder, testRules, map[string]string{"platform/90000000.tpm": "of:NtpmT(null)Ctcg,tpm-tis-mmio"})
	if err := m.open().Start(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(m.loaded, " "), "tpm_tis") {
		t.Errorf("device tree alias matched on a machine without a device tree: %v", m.loaded)
	}
	m = newMachine(t, testOrder, testRules, map[string]string{"platform/90000000.tpm": "of:NtpmT(null)Ctcg,tpm-tis-mmio"})
	if err := os.MkdirAll(filepath.Join(m.sys, "firmware", "devicetree"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.open().Start(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(m.loaded, " "), "tpm_tis") {
		t.Errorf("device tree alias did not match on a device tree machine: %v", m.loaded)
	}
}

// Rescan loads the drivers of devices that appear later (as the root
// device wait calls it), once; LoadRest loads every other module in
// load.order's order, once.
func TestRescanAndLoadRest(t *testing.T) {
	m := newMachine(t, testOrder, testRules, nil)
	l := m.open()
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	m.plug(map[string]string{"pci/0000:01:00.0": "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02"})
	if more, err := l.Rescan(); err != nil || !more {
		t.Fatalf("Rescan = %v, %v after an NVMe controller appeared", more, err)
	}
	if more, err := l.Rescan(); err != nil || more {
		t.Fatalf("second Rescan = %v, %v, want nothing loaded", more, err)
	}
	if err := l.LoadRest("root device not found"); err != nil {
		t.Fatal(err)
	}
	want := "libcrc32c.ko erofs.ko overlay.ko nvme.ko loop.ko efivarfs.ko scsi_common.ko scsi_mod.ko libata.ko ahci.ko sd_mod.ko virtio_blk.ko tpm_tis.ko"
	if got := strings.Join(m.loaded, " "); got != want {
		t.Errorf("loaded %s\nwant   %s", got, want)
	}
	// Each with the fail-safe's reason, not "needed by" whichever module
	// the map gave first.
	for _, line := range []string{"loading the 9 remaining modules: root device not found", "module scsi_common.ko (root device not found)"} {
		if !strings.Contains(strings.Join(m.log, "\n"), line) {
			t.Errorf("log lacks %q:\n%s", line, strings.Join(m.log, "\n"))
		}
	}
}

// Without rules (an older initrd), or with rules that do not parse,
// every module loads in order, as before rules existed.
func TestWithoutUsableRulesEverythingLoads(t *testing.T) {
	for name, rules := range map[string]string{"none": "", "broken": "always\n"} {
		m := newMachine(t, []string{"a.ko", "b.ko"}, rules, nil)
		if err := m.open().Start(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(m.loaded, " "); got != "a.ko b.ko" {
			t.Errorf("%s: loaded %s, want a.ko b.ko", name, got)
		}
		if name == "broken" && !strings.Contains(strings.Join(m.log, "\n"), "load.rules: module rules line 1") {
			t.Errorf("broken rules not logged: %v", m.log)
		}
	}
}

// A dependency that load.order lacks is an error naming it, not a module
// silently left out.
func TestDependencyMissingFromOrder(t *testing.T) {
	m := newMachine(t, []string{"erofs.ko"}, "always erofs.ko\ndepends erofs.ko libcrc32c.ko\n", nil)
	err := m.open().Start()
	if err == nil || !strings.Contains(err.Error(), "libcrc32c.ko") {
		t.Fatalf("Start = %v, want an error naming libcrc32c.ko", err)
	}
}
