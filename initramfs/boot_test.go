package initramfs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cfsboot/initramfs/blockdev"
	"cfsboot/verity"
)

// fakeSystem records what the boot sequence asked of the machine.
type fakeSystem struct {
	cmdline  string
	digest   verity.Digest // what Measure reports
	measure  error
	openErr  error
	rootErr  error
	shell    bool
	calls    []string
	messages []string
}

func (f *fakeSystem) call(s string)     { f.calls = append(f.calls, s) }
func (f *fakeSystem) MountEarly() error { f.call("early"); return nil }
func (f *fakeSystem) Cmdline() (string, string, error) {
	return f.cmdline, "", nil
}
func (f *fakeSystem) LoadModules() ([]string, error) {
	f.call("modules")
	return []string{"erofs"}, nil
}
func (f *fakeSystem) WaitRoot(_ context.Context, spec string) (blockdev.Device, error) {
	f.call("wait " + spec)
	return blockdev.Device{Path: "/dev/vda", FSType: "ext4"}, f.rootErr
}
func (f *fakeSystem) MountRoot(d blockdev.Device, fstype string, ro bool, flags string) error {
	f.call("mountroot " + d.Path + " " + fstype)
	return nil
}
func (f *fakeSystem) OpenImage(p string) (int, error) { f.call("open " + p); return 3, f.openErr }
func (f *fakeSystem) Measure(int) (verity.Digest, error) {
	f.call("measure")
	return f.digest, f.measure
}
func (f *fakeSystem) MountComposefs(int, string) error { f.call("composefs"); return nil }
func (f *fakeSystem) SetupState(Config) error          { f.call("state"); return nil }
func (f *fakeSystem) FindInit(c []string) (string, error) {
	f.call("findinit")
	return c[0], nil
}
func (f *fakeSystem) SwitchRoot(init string) error {
	f.call("switch " + init)
	return errors.New("exec failed")
}
func (f *fakeSystem) HasShell() bool         { return f.shell }
func (f *fakeSystem) Shell() error           { f.call("shell"); return nil }
func (f *fakeSystem) PowerOff()              { f.call("poweroff") }
func (f *fakeSystem) Reboot(d time.Duration) { f.call("reboot " + d.String()) }
func (f *fakeSystem) Log(m string)           { f.messages = append(f.messages, m) }
func (f *fakeSystem) Critical(m string)      { f.messages = append(f.messages, m) }

type recordingMeasurer struct{ events *[]string }

func (r recordingMeasurer) EnterInitrd() error { *r.events = append(*r.events, "enter"); return nil }
func (r recordingMeasurer) MeasureComposefs(d verity.Digest) error {
	*r.events = append(*r.events, "composefs:"+d.String())
	return nil
}
func (r recordingMeasurer) LeaveInitrd() error { *r.events = append(*r.events, "leave"); return nil }

func run(t *testing.T, f *fakeSystem) (error, []string) {
	t.Helper()
	var events []string
	b := Boot{Sys: f, NewMeasurer: func(Config) (Measurer, error) { return recordingMeasurer{&events}, nil }}
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
	want := []string{"early", "modules", "wait LABEL=r", "mountroot /dev/vda ext4", "open /sysroot/composefs/images/" + digest, "measure", "composefs", "state", "findinit", "switch /sbin/init"}
	if strings.Join(f.calls[:len(want)], "|") != strings.Join(want, "|") {
		t.Fatalf("calls %v\nwant %v", f.calls, want)
	}
	if strings.Join(events, " ") != "enter composefs:"+digest+" leave" {
		t.Fatalf("measurements %v", events)
	}
	if !has(f.messages, "composefs image "+digest+" verified") || !has(f.messages, "switching to /sbin/init") {
		t.Fatalf("messages %v", f.messages)
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
		"wrong digest":   {func(f *fakeSystem) { f.digest = other }, "FAILED at stage verify: expected fs-verity digest " + digest + " (composefs=), found " + other.String()},
		"missing image":  {func(f *fakeSystem) { f.openErr = errors.New("found no such file") }, "FAILED at stage verify: expected composefs image /sysroot/composefs/images/" + digest + ": found no such file"},
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
	tail := strings.Join(f.calls[len(f.calls)-2:], "|")
	if tail != "shell|reboot 7s" || !has(f.messages, "starting debug shell") {
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

func TestBreakpoint(t *testing.T) {
	f := good(t)
	f.cmdline += " rd.break=mount"
	run(t, f)
	joined := strings.Join(f.calls, "|")
	if !strings.Contains(joined, "measure|shell|composefs") {
		t.Fatalf("rd.break=mount: %v", f.calls)
	}
}
