package tpm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/verity"
)

// DebugShellEvent is extended into PCR 11 and the composefs PCR before any
// debug shell starts, so that nothing measured after it matches a clean
// boot's prediction.
const DebugShellEvent = "debug-shell"

// Policies of rd.cfsboot.tpm=.
const (
	PolicyAuto    = "auto"    // measure when a TPM exists
	PolicyRequire = "require" // a missing or failing TPM fails the boot
	PolicyOff     = "off"
)

// Devices are tried in this order; the resource manager first.
var Devices = []string{"/dev/tpmrm0", "/dev/tpm0"}

// MeasurerOptions configure the init's measurements.
type MeasurerOptions struct {
	Policy      string
	PCR         int  // for the composefs event
	ForcePhases bool // measure boot phases even without systemd-stub
	// StubMeasured reports whether systemd-stub measured the UKI into
	// PCR 11 (only then do the boot phases belong there too); nil: it did
	// not. It is asked at EnterInitrd, after the initrd's modules loaded.
	StubMeasured func() (bool, error)
	LogPath      string
	Log          func(string)
	// DeviceWait is how long to wait for the TPM device node.
	DeviceWait time.Duration
}

// BootMeasurer extends PCRs at the init's measurement points and records
// each event in the log.
type BootMeasurer struct {
	opts   MeasurerOptions
	t      Device // nil: not measuring
	banks  []Bank
	phases bool
}

// NewBootMeasurer opens the TPM as the policy asks.
func NewBootMeasurer(o MeasurerOptions) (*BootMeasurer, error) {
	if o.LogPath == "" {
		o.LogPath = LogPath
	}
	m := &BootMeasurer{opts: o}
	if o.Policy == PolicyOff {
		o.Log("TPM measurements off (rd.cfsboot.tpm=off)")
		return m, nil
	}
	if o.Policy != PolicyRequire && !firmwareAnnouncesTPM() && waitForDevice(0) == "" {
		// No driver will bring one up: do not wait.
		o.Log("no TPM (the firmware's ACPI tables announce none): this boot is not measured")
		return m, nil
	}
	path := waitForDevice(o.DeviceWait)
	if path == "" {
		if o.Policy == PolicyRequire {
			return nil, fmt.Errorf("rd.cfsboot.tpm=require: no TPM device (%s) appeared within %s", strings.Join(Devices, ", "), o.DeviceWait)
		}
		o.Log("no TPM found: this boot is not measured")
		return m, nil
	}
	t, err := openLinuxDevice(path)
	if err != nil {
		return m.degrade(err)
	}
	return newWithTPM(t, o)
}

func newWithTPM(t Device, o MeasurerOptions) (*BootMeasurer, error) {
	m := &BootMeasurer{opts: o, t: t}
	banks, err := ActiveBanks(t)
	if err != nil {
		t.Close()
		m.t = nil
		return m.degrade(err)
	}
	m.banks = banks
	names := make([]string, len(banks))
	for i, b := range banks {
		names[i] = b.Name
	}
	o.Log(fmt.Sprintf("TPM banks %s; composefs digest goes to PCR %d", strings.Join(names, ","), o.PCR))
	return m, nil
}

// degrade handles a TPM that exists but fails: fatal under require, else
// the boot continues unmeasured (sealed secrets will then not unseal,
// which is the safe direction).
func (m *BootMeasurer) degrade(err error) (*BootMeasurer, error) {
	if m.opts.Policy == PolicyRequire {
		return nil, err
	}
	m.opts.Log(fmt.Sprintf("%v: continuing without measurements (rd.cfsboot.tpm=auto)", err))
	if m.t != nil {
		m.t.Close()
	}
	m.t = nil
	return m, nil
}

// firmwareAnnouncesTPM reports whether the firmware may have a TPM 2.0:
// ACPI machines list it in their TPM2 table; without ACPI (device tree)
// nothing tells, so it may.
func firmwareAnnouncesTPM() bool {
	if _, err := os.Stat("/sys/firmware/acpi/tables"); err != nil {
		return true
	}
	_, err := os.Stat("/sys/firmware/acpi/tables/TPM2")
	return err == nil
}

func waitForDevice(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		for _, d := range Devices {
			if _, err := os.Stat(d); err == nil {
				return d
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// decidePhases sets whether the boot phases go into PCR 11: when asked
// to, or when systemd-stub measured the UKI there. A UEFI machine whose
// stub variable cannot be read fails under require; under auto the phases
// are measured, since a PCR 11 that misses them would look like a
// different boot rather than a forged one.
func (m *BootMeasurer) decidePhases() error {
	m.phases = m.opts.ForcePhases
	if m.phases || m.opts.StubMeasured == nil {
		return nil
	}
	stub, err := m.opts.StubMeasured()
	switch {
	case err != nil && m.opts.Policy == PolicyRequire:
		return fmt.Errorf("cannot tell whether systemd-stub measured the UKI into PCR 11: %w", err)
	case err != nil:
		m.opts.Log(fmt.Sprintf("cannot tell whether systemd-stub measured the UKI (%v): measuring the boot phases into PCR 11 anyway", err))
		m.phases = true
	default:
		m.phases = stub
	}
	return nil
}

// measure extends pcr with the event string on every bank and logs it;
// a failure degrades the measurer as the policy says.
func (m *BootMeasurer) measure(pcr int, event, eventType string) error {
	if err := m.extend(pcr, event, eventType); err != nil {
		_, derr := m.degrade(err)
		return derr
	}
	return nil
}

// extend extends pcr with the event and appends its record to the log.
func (m *BootMeasurer) extend(pcr int, event, eventType string) error {
	if m.t == nil {
		return nil
	}
	digests := EventDigests(m.banks, []byte(event))
	log, err := OpenLog(m.opts.LogPath)
	if errors.Is(err, ErrDirtyLog) {
		m.opts.Log(fmt.Sprintf("%s: %v", m.opts.LogPath, err))
	} else if err != nil {
		return err
	}
	err = Extend(m.t, pcr, digests)
	if err == nil {
		err = log.Append(NewRecord(pcr, digests, RecordContent{String: event, BootID: bootID(), Timestamp: bootTime(), EventType: eventType}))
	}
	if cerr := log.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	m.opts.Log(fmt.Sprintf("measured %q into PCR %d", event, pcr))
	return nil
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
}

func bootTime() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano() / 1000)
}

// EnterInitrd decides whether the boot phases are measured and measures
// enter-initrd if they are.
func (m *BootMeasurer) EnterInitrd() error {
	if m.t == nil {
		return nil
	}
	if err := m.decidePhases(); err != nil {
		return err
	}
	m.opts.Log(fmt.Sprintf("boot phases go to PCR 11: %v", m.phases))
	if !m.phases {
		return nil
	}
	return m.measure(PCR11, "enter-initrd", EventPhase)
}

// DebugShell measures that a debug shell is about to start, into PCR 11
// and the composefs PCR. Unlike the other events it never degrades: when a
// TPM is in use and the event cannot be measured, the shell must not start.
func (m *BootMeasurer) DebugShell() error {
	if m.t == nil {
		m.opts.Log("debug shell not measured: no TPM in use")
		return nil
	}
	pcrs := []int{PCR11}
	if m.opts.PCR != PCR11 {
		pcrs = append(pcrs, m.opts.PCR)
	}
	for _, pcr := range pcrs {
		if err := m.extend(pcr, DebugShellEvent, EventPhase); err != nil {
			return fmt.Errorf("measuring %s into PCR %d: %w", DebugShellEvent, pcr, err)
		}
	}
	return nil
}

// MeasureComposefs measures the root's identity: ComposefsEvent, or
// ComposefsInsecureEvent when it was not verified.
func (m *BootMeasurer) MeasureComposefs(d verity.Sum, verified bool) error {
	if !verified {
		return m.measure(m.opts.PCR, ComposefsInsecureEvent(d), EventFilesystem)
	}
	return m.measure(m.opts.PCR, ComposefsEvent(d), EventFilesystem)
}

// LeaveInitrd measures leave-initrd. The TPM stays open (a failing
// switch_root may still need it for a debug shell); its descriptor closes
// on exec.
func (m *BootMeasurer) LeaveInitrd() error {
	if !m.phases {
		return nil
	}
	return m.measure(PCR11, "leave-initrd", EventPhase)
}

// Close releases the TPM.
func (m *BootMeasurer) Close() error {
	if m.t == nil {
		return nil
	}
	err := m.t.Close()
	m.t = nil
	return err
}
