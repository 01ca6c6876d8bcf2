//go:build qemu

// Package qemutests boots the Debian cloud kernel under QEMU (TCG) with
// cfsboot initrds, a software TPM (swtpm) and virtio disks, and checks what
// the serial console says. Build tag "qemu": `make test-qemu`.
package qemutests

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cfsboot/initramfs/build"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// consoleArgs start every test kernel's command line: the serial console,
// and no_timer_check because under TCG on a busy host the kernel's IO-APIC
// timer check can fail and panic the boot ("IO-APIC + timer doesn't work").
const consoleArgs = "console=ttyS0 no_timer_check"

// bootTimeout bounds one wait on the console; TCG on a loaded 2-core
// machine is slow, and a failing test should still end.
const bootTimeout = 180 * time.Second

// Kernel is the fetched Debian trixie cloud kernel.
type Kernel struct {
	Image   string // vmlinuz
	Modules string // /lib/modules/<version> tree
}

// FetchKernel fetches (once, cached under .cache/debian) the VM kernel.
func FetchKernel() (Kernel, error) {
	cache := filepath.Join(repoRoot, ".cache", "debian")
	out, err := exec.Command(filepath.Join(repoRoot, "qemu-tests", "fetch-debs.sh"), cache, `linux-image-6\.12\..*-cloud-amd64$`).Output()
	if err != nil {
		return Kernel{}, fmt.Errorf("fetch kernel: %w", err)
	}
	root := filepath.Join(cache, "root", strings.TrimSpace(string(out)))
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(root, "usr", "lib", "modules", "*"))
	if len(images) != 1 || len(mods) != 1 {
		return Kernel{}, fmt.Errorf("kernel package %s: want one vmlinuz and one module tree, found %v %v", root, images, mods)
	}
	return Kernel{Image: images[0], Modules: mods[0]}, nil
}

// BuildStatic compiles a Go package of this repository as a static binary.
func BuildStatic(pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// HelperInitrd builds the Go package pkg of this repository as a static
// init and returns an initrd holding it and the named kernel modules (with
// what they need): the small single-purpose VMs of the tests.
func HelperInitrd(t testing.TB, k Kernel, pkg string, modules ...string) []byte {
	t.Helper()
	init := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if err := BuildStatic(pkg, init); err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	if _, err := build.Build(&img, build.Spec{Init: init, ModulesDir: k.Modules, Modules: modules}); err != nil {
		t.Fatal(err)
	}
	return img.Bytes()
}

// HelperInitrdFile is HelperInitrd written to a file; it returns the path.
func HelperInitrdFile(t testing.TB, k Kernel, pkg string, modules ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "initrd-"+filepath.Base(pkg)+".img")
	if err := os.WriteFile(path, HelperInitrd(t, k, pkg, modules...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// VMOptions describe one boot.
type VMOptions struct {
	Initrd string
	Append string // kernel command line (consoleArgs come first)
	Disk   string // raw disk image, attached as virtio /dev/vda; "" for none
	TPM    bool   // attach a swtpm TPM 2.0 (TIS)
	// TPMState reuses a swtpm state directory (a TPM that survives reboots).
	TPMState string

	// ExtraDisks are more raw images, attached in order after Disk as
	// /dev/vdb, /dev/vdc, ... (another drive, a USB stick in the port).
	ExtraDisks []string
	// UEFI boots through OVMF Secure Boot from an ESP; Initrd and Append
	// are then unused (the UKI on the ESP carries them).
	UEFI *UEFI
	// Reboot keeps QEMU running across guest reboots (boot counting
	// needs them); the VM then ends only at power off.
	Reboot bool
}

// VM is a running QEMU with its serial console.
type VM struct {
	t       testing.TB
	qemu    *exec.Cmd
	swtpm   *exec.Cmd
	stdin   io.WriteCloser
	console *Console
	exited  chan struct{}
	logPath string
}

// Boot starts a VM; it is killed when the test ends.
func Boot(t testing.TB, k Kernel, o VMOptions) *VM {
	t.Helper()
	dir := t.TempDir()
	args := slices.Clone(machineArgs)
	if !o.Reboot {
		args = append(args, "-no-reboot")
	}
	if o.UEFI != nil {
		args = append(args, o.UEFI.qemuArgs()...)
	} else {
		args = append(args, "-kernel", k.Image, "-initrd", o.Initrd, "-append", consoleArgs+" "+o.Append)
	}
	if o.Disk != "" {
		args = append(args, "-drive", "file="+o.Disk+",if=virtio,format=raw,cache=unsafe")
	}
	for _, d := range o.ExtraDisks {
		args = append(args, "-drive", "file="+d+",if=virtio,format=raw,cache=unsafe")
	}
	vm := &VM{t: t, exited: make(chan struct{})}
	if o.TPM {
		state := o.TPMState
		if state == "" {
			state = filepath.Join(dir, "tpm")
		}
		os.MkdirAll(state, 0o700)
		sock := filepath.Join(dir, "swtpm.sock")
		vm.swtpm = exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state,
			"--ctrl", "type=unixio,path="+sock, "--flags", "not-need-init")
		if err := vm.swtpm.Start(); err != nil {
			t.Fatalf("swtpm: %v", err)
		}
		for i := 0; i < 50; i++ {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		args = append(args, "-chardev", "socket,id=chrtpm,path="+sock,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0")
	}
	vm.start(args)
	return vm
}

// machineArgs are every test VM's machine: q35 under TCG with one CPU and
// 1 GiB, the serial console on stdio, no display.
var machineArgs = []string{
	"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
	"-display", "none", "-monitor", "none", "-serial", "stdio",
}

// start runs QEMU with args, logs its console to .cache/qemu-logs and
// kills it (and swtpm) when the test ends.
func (vm *VM) start(args []string) {
	t := vm.t
	t.Helper()
	vm.qemu = exec.Command("qemu-system-x86_64", args...)
	stdout, err := vm.qemu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	vm.qemu.Stderr = vm.qemu.Stdout
	if vm.stdin, err = vm.qemu.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(repoRoot, ".cache", "qemu-logs")
	os.MkdirAll(logDir, 0o755)
	vm.logPath = filepath.Join(logDir, logName(t.Name()))
	logFile, err := os.Create(vm.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.qemu.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	vm.console = NewConsole(stdout, logFile)
	go func() {
		<-vm.console.Done()
		logFile.Close()
		vm.qemu.Wait()
		close(vm.exited)
	}()
	t.Cleanup(vm.Kill)
}

// bootsPerTest counts the boots of each test, so that a test's second
// boot (or the provisioning boot it triggered) keeps its own log.
var bootsPerTest = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// logName is <test>.log for a test's first boot, <test>.<n>.log after.
func logName(test string) string {
	bootsPerTest.Lock()
	defer bootsPerTest.Unlock()
	bootsPerTest.n[test]++
	name := strings.ReplaceAll(test, "/", "_")
	if n := bootsPerTest.n[test]; n > 1 {
		name += "." + strconv.Itoa(n)
	}
	return name + ".log"
}

// Kill stops QEMU and swtpm.
func (vm *VM) Kill() {
	if vm.qemu.Process != nil {
		vm.qemu.Process.Kill()
	}
	if vm.swtpm != nil && vm.swtpm.Process != nil {
		vm.swtpm.Process.Kill()
		vm.swtpm.Wait()
	}
}

// Lines returns the console lines so far.
func (vm *VM) Lines() []string { return vm.console.Lines() }

// WaitFor waits for a console line matching pattern that comes after the
// line the previous WaitFor returned, and returns it; the test fails with
// the console's tail when the VM exits or the time runs out first.
func (vm *VM) WaitFor(pattern string) string {
	vm.t.Helper()
	line, ok := vm.console.Next(regexp.MustCompile(pattern), bootTimeout)
	if !ok {
		vm.t.Fatalf("console never showed /%s/ after the previous match; last lines (full log %s):\n%s", pattern, vm.logPath, vm.tail(40))
	}
	return line
}

// Has reports whether any console line so far matches pattern, wherever
// it is.
func (vm *VM) Has(pattern string) bool { return vm.console.Has(regexp.MustCompile(pattern)) }

// Send types a line on the serial console.
func (vm *VM) Send(line string) {
	io.WriteString(vm.stdin, line+"\n")
}

// WaitExit waits for the VM to power off.
func (vm *VM) WaitExit() {
	vm.t.Helper()
	select {
	case <-vm.exited:
	case <-time.After(bootTimeout):
		vm.t.Fatalf("VM did not power off; last lines (full log %s):\n%s", vm.logPath, vm.tail(30))
	}
}

func (vm *VM) tail(n int) string { return vm.console.Tail(n) }

// run runs a host command, failing the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
