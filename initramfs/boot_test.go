package initramfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cfsboot/initramfs/blockdev"
	"cfsboot/verity"
)

// fakeSystem records what the boot sequence asked of the machine.
type fakeSystem struct {
	cmdline, initrdCmdline string
	digest                 verity.Digest         // what Measure reports
	absent                 map[string]bool       // image names the store lacks
	sums                   map[string]verity.Sum // what Measure reports for these names instead
	conf                   string                // the setup-root configuration file
	allowInsecure          bool
	opened                 string // the last image name opened
	state                  string // the deployment SetupState got
	mountedImage           Image
	measure                error
	openErr                error
	rootErr                error
	shell, shellUnderSB    bool
	secureBoot             bool
	secureBootErr          error
	panicIn                string // a method that panics
	calls                  []string
	messages               []string
	critical               []string
	measuredFd, mountedFd  int
	bootCountPath          string // LoaderBootCountPath, "" when not counted
}

// imageFd is the descriptor the fake OpenImage returns.
const imageFd = 42

func (f *fakeSystem) call(s string) {
	f.calls = append(f.calls, s)
	if f.panicIn != "" && strings.HasPrefix(s, f.panicIn) {
		var m map[string]int
		m["nil map"]++ // a real runtime panic, as a parser bug would raise
	}
}
func (f *fakeSystem) MountEarly() error { f.call("early"); return nil }
func (f *fakeSystem) Cmdline() (string, string, error) {
	return f.cmdline, f.initrdCmdline, nil
}
func (f *fakeSystem) LoadModules() error { f.call("modules"); return nil }
func (f *fakeSystem) WaitRoot(_ context.Context, spec string) (blockdev.Device, error) {
	f.call("wait " + spec)
	return blockdev.Device{Path: "/dev/vda", FSType: "ext4"}, f.rootErr
}
func (f *fakeSystem) MountRoot(d blockdev.Device, fstype string, ro bool, flags string) error {
	f.call("mountroot " + d.Path + " " + fstype)
	return nil
}
func (f *fakeSystem) OpenImage(store, name string) (int, error) {
	f.call("open " + store + " " + name)
	if f.absent[name] {
		return -1, fmt.Errorf("images/%s: %w", name, ErrImageAbsent)
	}
	f.opened = name
	return imageFd, f.openErr
}
func (f *fakeSystem) Measure(fd int) (verity.Sum, error) {
	f.call("measure")
	f.measuredFd = fd
	if s, ok := f.sums[f.opened]; ok {
		return s, f.measure
	}
	return f.digest.Sum(), f.measure
}
func (f *fakeSystem) MountComposefs(img Image, _ string, transientRoot bool) error {
	f.call(fmt.Sprintf("composefs transient-root=%v", transientRoot))
	f.mountedFd = img.Fd
	f.mountedImage = img
	return nil
}
func (f *fakeSystem) SetupState(c Config, deployment string) error {
	f.call("state")
	f.state = deployment
	return nil
}
func (f *fakeSystem) SetupRootConf() ([]byte, error) { return []byte(f.conf), nil }
func (f *fakeSystem) AllowInsecure() bool            { return f.allowInsecure }
func (f *fakeSystem) FindInit(c []string) (string, error) {
	f.call("findinit")
	return c[0], nil
}
func (f *fakeSystem) SwitchRoot(init string) error {
	f.call("switch " + init)
	return errors.New("exec failed")
}
func (f *fakeSystem) HasShell() (bool, bool)      { return f.shell, f.shellUnderSB }
func (f *fakeSystem) SecureBoot() (bool, error)   { return f.secureBoot, f.secureBootErr }
func (f *fakeSystem) Shell() error                { f.call("shell"); return nil }
func (f *fakeSystem) BootCounted() (string, bool) { return f.bootCountPath, f.bootCountPath != "" }
func (f *fakeSystem) PowerOff()                   { f.call("poweroff") }
func (f *fakeSystem) Reboot(d time.Duration)      { f.call("reboot " + d.String()) }
func (f *fakeSystem) Log(m string)                { f.messages = append(f.messages, m) }
func (f *fakeSystem) Critical(m string) {
	f.messages = append(f.messages, m)
	f.critical = append(f.critical, m)
}

// recordingMeasurer records events in the order they happen, among the
// system's calls (as "tpm:<event>").
type recordingMeasurer struct {
	f        *fakeSystem
	events   *[]string
	shellErr error
}

func (r recordingMeasurer) record(e string) {
	*r.events = append(*r.events, e)
	r.f.calls = append(r.f.calls, "tpm:"+e)
}
func (r recordingMeasurer) EnterInitrd() error { r.record("enter"); return nil }
func (r recordingMeasurer) MeasureComposefs(d verity.Sum, verified bool) error {
	if !verified {
		r.record("composefs-insecure:" + d.String())
		return nil
	}
	r.record("composefs:" + d.String())
	return nil
}
func (r recordingMeasurer) DebugShell() error {
	if r.shellErr != nil {
		return r.shellErr
	}
	r.record("debug-shell")
	return nil
}
func (r recordingMeasurer) LeaveInitrd() error { r.record("leave"); return nil }
func (r recordingMeasurer) Close() error       { return nil }

func run(t *testing.T, f *fakeSystem) (error, []string) {
	t.Helper()
	return runWith(t, f, nil)
}

func runWith(t *testing.T, f *fakeSystem, shellErr error) (error, []string) {
	t.Helper()
	var events []string
	b := Boot{Sys: f, NewMeasurer: func(Config) (Measurer, error) {
		f.calls = append(f.calls, "tpm:open")
		return recordingMeasurer{f, &events, shellErr}, nil
	}}
	return b.Run(), events
}

func good(t *testing.T) *fakeSystem {
	d, _ := verity.ParseDigest(digest)
	return &fakeSystem{cmdline: "console=ttyS0 composefs=" + digest + " root=LABEL=r", digest: d, shell: true}
}

func has(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func hasExactly(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestGoodBootReachesSwitchRoot(t *testing.T) {
	f := good(t)
	err, events := run(t, f)
	want := []string{"early", "modules", "tpm:open", "tpm:enter", "wait LABEL=r", "mountroot /dev/vda ext4", "open composefs " + digest, "measure", "tpm:composefs:" + digest, "composefs transient-root=false", "state", "findinit", "tpm:leave", "switch /sbin/init"}
	if strings.Join(f.calls[:len(want)], "|") != strings.Join(want, "|") {
		t.Fatalf("calls %v\nwant %v", f.calls, want)
	}
	if strings.Join(events, " ") != "enter composefs:"+digest+" leave" {
		t.Fatalf("measurements %v", events)
	}
	if !has(f.messages, "composefs image "+digest+" verified") || !has(f.messages, "switching to /sbin/init") {
		t.Fatalf("messages %v", f.messages)
	}
	// The descriptor mounted is the one whose digest was checked.
	if f.measuredFd != imageFd || f.mountedFd != imageFd {
		t.Fatalf("opened fd %d, measured fd %d, mounted fd %d", imageFd, f.measuredFd, f.mountedFd)
	}
	// The fake exec fails: that is a failure at the switch stage, never a
	// return into anything else.
	if err == nil || !strings.Contains(err.Error(), "FAILED at stage switch: exec failed") {
		t.Fatal(err)
	}
}

func TestVerificationFailuresNeverMount(t *testing.T) {
	other := verity.ComputeBytes([]byte("other"))
	for name, c := range map[string]struct {
		mod  func(*fakeSystem)
		want string
	}{
		"wrong digest":   {func(f *fakeSystem) { f.digest = other }, "FAILED at stage verify: expected fs-verity digest sha256:" + digest + " (composefs=" + digest + "), found sha256:" + other.String()},
		"missing image":  {func(f *fakeSystem) { f.absent = map[string]bool{digest: true} }, "FAILED at stage verify: expected one of the composefs images the command line names in /sysroot/composefs/images, found none of them (tried composefs=" + digest + ")"},
		"bad image":      {func(f *fakeSystem) { f.openErr = errors.New("found a FIFO, not a regular file") }, "FAILED at stage verify: expected composefs image /sysroot/composefs/images/" + digest + " (composefs=" + digest + "): found a FIFO, not a regular file"},
		"no fs-verity":   {func(f *fakeSystem) { f.measure = verity.ErrNotEnabled }, "found a file without it: the image is not protected"},
		"no fs support":  {func(f *fakeSystem) { f.measure = verity.ErrNotSupported }, "found a filesystem without fs-verity support"},
		"no root device": {func(f *fakeSystem) { f.rootErr = errors.New("no block device matches") }, "FAILED at stage root: waited 30s for root device: no block device matches"},
		"two root devices": {func(f *fakeSystem) {
			f.rootErr = fmt.Errorf("%w root=LABEL=x: /dev/vda; /dev/vdb", blockdev.ErrAmbiguous)
		}, "FAILED at stage root: root device: more than one block device matches root=LABEL=x: /dev/vda; /dev/vdb"},
	} {
		t.Run(name, func(t *testing.T) {
			f := good(t)
			c.mod(f)
			err, events := run(t, f)
			if err == nil || !has(f.messages, c.want) {
				t.Fatalf("messages %v, want %q", f.messages, c.want)
			}
			for _, forbidden := range []string{"composefs", "state", "switch /sbin/init", "shell"} {
				if hasExactly(f.calls, forbidden) {
					t.Errorf("%s ran after a failed verification: %v", forbidden, f.calls)
				}
			}
			if has(events, "composefs:") || has(events, "leave") {
				t.Errorf("measured an unverified boot: %v", events)
			}
			if f.calls[len(f.calls)-1] != "poweroff" || !has(f.messages, "powering off") {
				t.Errorf("did not power off: %v", f.calls)
			}
		})
	}
}

func TestFailurePolicy(t *testing.T) {
	// rd.shell: the shell runs after the failure, then the machine still
	// powers off; panic=N reboots instead.
	f := good(t)
	f.cmdline += " rd.shell panic=7"
	f.digest = verity.Digest{}
	run(t, f)
	tail := strings.Join(f.calls[len(f.calls)-3:], "|")
	if tail != "tpm:debug-shell|shell|reboot 7s" || !has(f.messages, "starting debug shell") {
		t.Fatalf("calls %v messages %v", f.calls, f.messages)
	}
	// A malformed command line fails at cmdline but honours rd.shell.
	f = &fakeSystem{cmdline: "composefs=xyz root=/dev/vda rd.shell", shell: true}
	err, _ := run(t, f)
	if err == nil || !has(f.messages, "FAILED at stage cmdline: kernel command line: composefs=xyz") || !has(f.calls, "shell") {
		t.Fatalf("%v %v %v", err, f.messages, f.calls)
	}
	if has(f.calls, "modules") {
		t.Fatal("continued after a bad command line")
	}
	// rd.shell without a shell in the initrd says so.
	f = &fakeSystem{cmdline: "root=/dev/vda rd.shell"}
	run(t, f)
	if !has(f.messages, "no shell in this initrd") || has(f.calls, "shell") {
		t.Fatalf("%v %v", f.messages, f.calls)
	}
}

// TestFailureWithBootCounting: when systemd-boot counts the booted entry's
// tries, a failure reboots (after 10 s, or panic=) instead of powering
// off, and says why, so the boot loader falls back by itself.
func TestFailureWithBootCounting(t *testing.T) {
	for _, c := range []struct{ extra, reboot string }{{"", "reboot 10s"}, {" panic=3", "reboot 3s"}} {
		f := good(t)
		f.cmdline += c.extra
		f.bootCountPath = `\EFI\Linux\debian-2-0123456789ab+2-1.efi`
		f.digest = verity.Digest{}
		run(t, f)
		if last := f.calls[len(f.calls)-1]; last != c.reboot || !has(f.critical, "systemd-boot counts this try (\\EFI\\Linux\\debian-2-0123456789ab+2-1.efi)") {
			t.Errorf("%q: calls %v critical %v", c.extra, f.calls, f.critical)
		}
	}
}

func TestBreakpoint(t *testing.T) {
	f := good(t)
	f.cmdline += " rd.break=mount"
	run(t, f)
	joined := strings.Join(f.calls, "|")
	if !strings.Contains(joined, "measure|tpm:composefs:"+digest+"|tpm:debug-shell|shell|composefs") {
		t.Fatalf("rd.break=mount: %v", f.calls)
	}
	if !has(f.critical, "rd.break=mount: continuing the boot; it is measured as debugged") {
		t.Fatalf("messages %v", f.critical)
	}
}

// TestPanicIsABootFailure: a panic anywhere in the sequence (a parser bug
// on a hostile disk) ends like any failure: one FAILED line naming the
// stage, the shell only if allowed, then power off or reboot. PID 1 does
// not die.
func TestPanicIsABootFailure(t *testing.T) {
	f := good(t)
	f.panicIn = "mountroot"
	err, events := run(t, f)
	if err == nil || !strings.Contains(err.Error(), "FAILED at stage root: internal error: assignment to entry in nil map") {
		t.Fatalf("%v", err)
	}
	if n := countPrefix(f.critical, "FAILED"); n != 1 {
		t.Errorf("%d FAILED lines: %v", n, f.critical)
	}
	if has(f.calls, "shell") || f.calls[len(f.calls)-1] != "poweroff" || has(events, "composefs:") {
		t.Errorf("calls %v events %v", f.calls, events)
	}
	// With rd.shell and panic=: the shell (measured), then reboot.
	f = good(t)
	f.cmdline += " rd.shell panic=3"
	f.panicIn = "measure"
	run(t, f)
	if tail := strings.Join(f.calls[len(f.calls)-3:], "|"); tail != "tpm:debug-shell|shell|reboot 3s" {
		t.Errorf("calls %v", f.calls)
	}
	// A panic in the failure path itself still powers off.
	f = good(t)
	f.cmdline += " rd.shell panic=3"
	f.digest = verity.Digest{}
	f.panicIn = "shell"
	run(t, f)
	if f.calls[len(f.calls)-1] != "poweroff" || !has(f.critical, "FAILED at stage verify: internal error") {
		t.Errorf("calls %v messages %v", f.calls, f.critical)
	}
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// TestHaltDoesNotDeadlock: PID 1's last act must block without the runtime
// calling it a deadlock (a bare select{} with nothing else running dies
// with "all goroutines are asleep", and PID 1 dying panics the kernel).
func TestHaltDoesNotDeadlock(t *testing.T) {
	if os.Getenv("CFSBOOT_TEST_HALT") == "1" {
		Halt()
	}
	// -test.timeout=0: no alarm timer, so nothing but Halt keeps the child alive.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHaltDoesNotDeadlock$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), "CFSBOOT_TEST_HALT=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("Halt returned or crashed: %v\n%s", err, out.String())
	case <-time.After(2 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// TestDebugShellIsMeasuredFirst: every shell is preceded by the
// debug-shell measurement, and one that cannot be measured does not start.
func TestDebugShellIsMeasuredFirst(t *testing.T) {
	f := good(t)
	f.cmdline += " rd.shell"
	f.digest = verity.Digest{}
	runWith(t, f, nil)
	if !strings.Contains(strings.Join(f.calls, "|"), "tpm:debug-shell|shell|poweroff") {
		t.Fatalf("calls %v", f.calls)
	}
	if !has(f.critical, "rd.shell: measuring debug-shell into PCR 11 and PCR 15 before the shell starts") {
		t.Fatalf("messages %v", f.critical)
	}
	f = good(t)
	f.cmdline += " rd.shell"
	f.digest = verity.Digest{}
	runWith(t, f, errors.New("TPM: extending PCR 11: failure mode"))
	if has(f.calls, "shell") || !has(f.critical, "rd.shell: refusing the debug shell: it cannot be measured: TPM: extending PCR 11: failure mode") {
		t.Fatalf("calls %v messages %v", f.calls, f.critical)
	}
	// rd.break before the TPM stage opens the TPM early, once.
	f = good(t)
	f.cmdline += " rd.break=modules"
	err, events := run(t, f)
	want := "early|tpm:open|tpm:debug-shell|shell|modules|tpm:enter|wait"
	if !strings.Contains(strings.Join(f.calls, "|"), want) || strings.Count(strings.Join(f.calls, "|"), "tpm:open") != 1 {
		t.Fatalf("calls %v, want %s", f.calls, want)
	}
	if strings.Join(events, " ") != "debug-shell enter composefs:"+digest+" leave" || !strings.Contains(err.Error(), "stage switch") {
		t.Fatalf("events %v err %v", events, err)
	}
}

// TestSecureBootRefusesShell: under UEFI Secure Boot no shell starts unless
// the initrd was built to allow it; an unknown Secure Boot state refuses too.
func TestSecureBootRefusesShell(t *testing.T) {
	for name, c := range map[string]struct {
		secureBoot, optIn bool
		sbErr             error
		wantShell         bool
		want              string
	}{
		"secure boot":           {true, false, nil, false, "rd.shell: refusing the debug shell: UEFI Secure Boot is enabled and this initrd was not built with --allow-shell-under-secure-boot"},
		"secure boot, opted in": {true, true, nil, true, "starting debug shell"},
		"unknown state":         {false, false, errors.New("efivarfs: no such device"), false, "cannot tell whether UEFI Secure Boot is enabled: efivarfs: no such device"},
		"no secure boot":        {false, false, nil, true, "starting debug shell"},
	} {
		t.Run(name, func(t *testing.T) {
			f := good(t)
			f.cmdline += " rd.shell"
			f.digest = verity.Digest{}
			f.secureBoot, f.shellUnderSB, f.secureBootErr = c.secureBoot, c.optIn, c.sbErr
			run(t, f)
			if has(f.calls, "shell") != c.wantShell || !has(f.critical, c.want) || f.calls[len(f.calls)-1] != "poweroff" {
				t.Fatalf("calls %v messages %v", f.calls, f.critical)
			}
			if !c.wantShell && has(f.calls, "tpm:debug-shell") {
				t.Fatal("measured a shell that did not start")
			}
		})
	}
	// rd.break under Secure Boot: no shell, the boot goes on.
	f := good(t)
	f.cmdline += " rd.break=root"
	f.secureBoot = true
	run(t, f)
	if has(f.calls, "shell") || !has(f.calls, "switch /sbin/init") {
		t.Fatalf("calls %v", f.calls)
	}
}

// TestInitrdCmdlineWins: a kernel command line that contradicts the
// initrd's on a security key fails the boot and gets no shell from it.
func TestInitrdCmdlineWins(t *testing.T) {
	f := good(t)
	f.initrdCmdline = "rd.shell=0"
	f.cmdline += " rd.shell"
	run(t, f)
	if !has(f.critical, "FAILED at stage cmdline: kernel command line: rd.shell: conflicts with rd.shell=0") || has(f.calls, "shell") || has(f.calls, "modules") {
		t.Fatalf("calls %v messages %v", f.calls, f.critical)
	}
}

// TestImageListTriedInOrder: the first image of the command line's list
// that the store has boots, whatever its algorithm; the state and the
// measurement are that image's.
func TestImageListTriedInOrder(t *testing.T) {
	absent := verity.SHA512.ComputeBytes([]byte("absent"))
	present := verity.SHA512.ComputeBytes([]byte("present"))
	f := good(t)
	f.cmdline = "root=/dev/vda composefs.digest=v1-sha512-12:" + absent.String() + " composefs.digest=v1-sha512-12:" + present.String() + " composefs=" + digest
	f.absent = map[string]bool{absent.String(): true}
	f.sums = map[string]verity.Sum{present.String(): present}
	_, events := run(t, f)
	want := []string{"open composefs " + absent.String(), "open composefs " + present.String(), "measure", "tpm:composefs:" + present.String()}
	got := strings.Join(f.calls, "|")
	if !strings.Contains(got, strings.Join(want, "|")) || strings.Contains(got, "open composefs "+digest) {
		t.Fatalf("calls %v", f.calls)
	}
	if f.state != present.String() || f.mountedImage.Name() != present.String() || !f.mountedImage.Verified {
		t.Fatalf("state %q, mounted %+v", f.state, f.mountedImage)
	}
	if strings.Join(events, " ") != "enter composefs:"+present.String()+" leave" {
		t.Fatalf("measurements %v", events)
	}
	if !has(f.messages, "composefs image "+absent.String()+" (composefs.digest=v1-sha512-12:"+absent.String()+") is not in the store; trying the next") {
		t.Fatalf("messages %v", f.messages)
	}
}

// TestPresentBadImageIsNotSkipped: only an absent image moves on to the
// next entry; a present image that fails (wrong digest, wrong algorithm,
// no fs-verity, unreadable) fails the boot even when a later entry would
// verify.
func TestPresentBadImageIsNotSkipped(t *testing.T) {
	first := verity.SHA512.ComputeBytes([]byte("first"))
	sameBytes, _ := verity.NewSum(verity.SHA256, first.Bytes()[:32])
	for name, c := range map[string]struct {
		mod  func(*fakeSystem)
		want string
	}{
		"wrong digest": {func(f *fakeSystem) { f.sums = map[string]verity.Sum{first.String(): verity.SHA512.ComputeBytes(nil)} }, "expected fs-verity digest sha512:" + first.String()},
		// The kernel reports the algorithm: a SHA-256 seal is not a
		// SHA-512 one, whatever the bytes.
		"wrong algorithm": {func(f *fakeSystem) { f.sums = map[string]verity.Sum{first.String(): sameBytes} }, "found sha256:"},
		"no fs-verity":    {func(f *fakeSystem) { f.measure = verity.ErrNotEnabled }, "found a file without it"},
		"unreadable":      {func(f *fakeSystem) { f.openErr = errors.New("found a symlink leading out of the store") }, "(composefs.digest=v1-sha512-12:" + first.String() + "): found a symlink leading out of the store"},
	} {
		t.Run(name, func(t *testing.T) {
			f := good(t)
			f.cmdline = "root=/dev/vda composefs.digest=v1-sha512-12:" + first.String() + " composefs=" + digest
			c.mod(f)
			err, events := run(t, f)
			if err == nil || !strings.Contains(err.Error(), "FAILED at stage verify: ") || !has(f.messages, c.want) {
				t.Fatalf("%v; messages %v, want %q", err, f.messages, c.want)
			}
			if has(f.calls, "open composefs "+digest) || has(f.calls, "composefs transient") || has(events, "composefs:") {
				t.Fatalf("went on after a bad present image: %v %v", f.calls, events)
			}
		})
	}
}

// TestVerityOptionalEntries: '?' is refused unless the initrd allows it;
// allowed, an image without fs-verity boots unverified and is measured as
// composefs-insecure, while one with fs-verity is still checked.
func TestVerityOptionalEntries(t *testing.T) {
	f := good(t)
	f.cmdline = "root=/dev/vda composefs=?" + digest
	err, _ := run(t, f)
	if err == nil || !strings.Contains(err.Error(), "FAILED at stage cmdline: kernel command line: composefs=?"+digest+": the '?' prefix makes fs-verity optional, and this initrd was not built with --allow-insecure") || has(f.calls, "modules") {
		t.Fatalf("%v %v", err, f.calls)
	}

	f = good(t)
	f.cmdline, f.allowInsecure, f.measure = "root=/dev/vda composefs=?"+digest, true, verity.ErrNotEnabled
	_, events := run(t, f)
	if f.mountedImage.Verified || f.mountedImage.Name() != digest || strings.Join(events, " ") != "enter composefs-insecure:"+digest+" leave" {
		t.Fatalf("mounted %+v, measured %v", f.mountedImage, events)
	}
	if !has(f.critical, "composefs image "+digest+" NOT verified") {
		t.Fatalf("critical %v", f.critical)
	}

	f = good(t)
	f.cmdline, f.allowInsecure, f.digest = "root=/dev/vda composefs=?"+digest, true, verity.ComputeBytes([]byte("x"))
	err, _ = run(t, f)
	if err == nil || !strings.Contains(err.Error(), "FAILED at stage verify: expected fs-verity digest") {
		t.Fatal(err)
	}
	f = good(t)
	f.cmdline, f.allowInsecure = "root=/dev/vda composefs=?"+digest, true
	_, events = run(t, f)
	if !f.mountedImage.Verified || !has(events, "composefs:"+digest) {
		t.Fatalf("mounted %+v, measured %v", f.mountedImage, events)
	}
}

// TestSetupRootConf: the initrd's setup-root configuration reaches the
// mount and state stages; a malformed one fails before anything mounts.
func TestSetupRootConf(t *testing.T) {
	f := good(t)
	f.conf = "[root]\ntransient = true\n"
	run(t, f)
	if !has(f.calls, "composefs transient-root=true") {
		t.Fatalf("calls %v", f.calls)
	}
	f = good(t)
	f.conf = "[etc]\nmount = \"tmpfs\"\n"
	err, _ := run(t, f)
	if err == nil || !strings.Contains(err.Error(), `FAILED at stage cmdline: /usr/lib/composefs/setup-root-conf.toml: line 2: mount = "tmpfs": unknown mount type`) || has(f.calls, "modules") {
		t.Fatalf("%v %v", err, f.calls)
	}
}
