package tpm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"golang.org/x/sys/unix"

	"cfsboot/verity"
)

// Policies of rd.cfsboot.tpm=.
const (
	PolicyAuto    = "auto"    // measure when a TPM exists
	PolicyRequire = "require" // a missing or failing TPM fails the boot
	PolicyOff     = "off"
)

// stubEFIVar is set by systemd-stub when it measured the UKI into PCR 11;
// only then do the boot phases belong in PCR 11 too.
const stubEFIVar = "/sys/firmware/efi/efivars/StubPcrKernelImage-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// Devices are tried in this order; the resource manager first.
var Devices = []string{"/dev/tpmrm0", "/dev/tpm0"}

// MeasurerOptions configure the init's measurements.
type MeasurerOptions struct {
	Policy      string
	PCR         int  // for the composefs event
	ForcePhases bool // measure boot phases even without systemd-stub
	LogPath     string
	Log         func(string)
	// DeviceWait is how long to wait for the TPM device node.
	DeviceWait time.Duration
}

// BootMeasurer extends PCRs at the init's measurement points and records
// each event in the log.
type BootMeasurer struct {
	opts   MeasurerOptions
	t      transport.TPMCloser // nil: not measuring
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
	path := waitForDevice(o.DeviceWait)
	if path == "" {
		if o.Policy == PolicyRequire {
			return nil, fmt.Errorf("rd.cfsboot.tpm=require: no TPM device (%s) appeared within %s", strings.Join(Devices, ", "), o.DeviceWait)
		}
		o.Log("no TPM found: this boot is not measured")
		return m, nil
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return m.degrade(fmt.Errorf("TPM %s: %w", path, err))
	}
	return newWithTPM(t, o, stubMeasured())
}

func newWithTPM(t transport.TPMCloser, o MeasurerOptions, stub bool) (*BootMeasurer, error) {
	m := &BootMeasurer{opts: o, t: t, phases: o.ForcePhases || stub}
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
	o.Log(fmt.Sprintf("TPM banks %s; composefs digest goes to PCR %d; boot phases to PCR 11: %v", strings.Join(names, ","), o.PCR, m.phases))
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

// stubMeasured mounts efivarfs if needed and looks for systemd-stub's mark.
func stubMeasured() bool {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return false
	}
	unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, "")
	_, err := os.Stat(stubEFIVar)
	return err == nil
}

// measure extends pcr with the event string on every bank and logs it.
func (m *BootMeasurer) measure(pcr int, event, eventType string) error {
	if m.t == nil {
		return nil
	}
	digests := EventDigests(m.banks, []byte(event))
	log, err := OpenLog(m.opts.LogPath)
	if errors.Is(err, ErrDirtyLog) {
		m.opts.Log(fmt.Sprintf("%s: %v", m.opts.LogPath, err))
	} else if err != nil {
		_, derr := m.degrade(err)
		return derr
	}
	err = Extend(m.t, pcr, digests)
	if err == nil {
		err = log.Append(NewRecord(pcr, digests, RecordContent{String: event, BootID: bootID(), Timestamp: bootTime(), EventType: eventType}))
	}
	if cerr := log.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_, derr := m.degrade(err)
		return derr
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

// EnterInitrd measures the enter-initrd phase when phases are measured.
func (m *BootMeasurer) EnterInitrd() error {
	if !m.phases {
		return nil
	}
	return m.measure(PCR11, "enter-initrd", EventPhase)
}

// MeasureComposefs measures the verified root's identity.
func (m *BootMeasurer) MeasureComposefs(d verity.Digest) error {
	return m.measure(m.opts.PCR, ComposefsEvent(d), EventFilesystem)
}

// LeaveInitrd measures leave-initrd and releases the TPM.
func (m *BootMeasurer) LeaveInitrd() error {
	var err error
	if m.phases {
		err = m.measure(PCR11, "leave-initrd", EventPhase)
	}
	if m.t != nil {
		m.t.Close()
		m.t = nil
	}
	return err
}

// OpenDevice opens path, or the first TPM device present when path is "".
func OpenDevice(path string) (transport.TPMCloser, error) {
	if path == "" {
		if path = waitForDevice(0); path == "" {
			return nil, fmt.Errorf("no TPM device (%s)", strings.Join(Devices, ", "))
		}
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %w", path, err)
	}
	return t, nil
}
