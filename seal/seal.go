// Package seal enables fs-verity on the store of an installed disk when the
// host's kernel cannot: it boots a short VM (QEMU, TCG by default) with the
// image's own kernel and an initrd holding cfsboot-seal, which seals the
// store in place, and follows its progress on the console.
package seal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"cfsboot/initramfs/build"
	"cfsboot/seal/inplace"
)

// Options describe one sealing run.
type Options struct {
	Kernel     string // the kernel image (vmlinuz) to boot: the image's own
	ModulesDir string // its /lib/modules/<version> tree (virtio_blk)
	Init       string // the static cfsboot-seal binary
	Disk       string // the installed disk (file or device)
	Root       string // root= value of the root partition: PARTUUID=...
	Store      string // the store's path on the root partition; "" for composefs
	// GC removes the objects no image references after sealing (the host
	// cannot: it cannot read sealed images without fs-verity).
	GC bool
	// Progress is called as files are sealed; nil for none.
	Progress func(done, total int)
	// Console receives the VM's whole console output; nil to drop it.
	Console io.Writer
	// QEMU is the emulator binary; "" for qemu-system-x86_64.
	QEMU string
	// Accel is QEMU's accelerator; "" for tcg, which works everywhere
	// (a /dev/kvm that opens is no promise: nested KVM here aborts on
	// -cpu max).
	Accel string
}

// Seal boots the sealing VM and returns the number of files it sealed. The
// VM's own error, or the console's last lines when it stops without a
// word, make up the error.
func Seal(ctx context.Context, o Options) (int, error) {
	if o.Kernel == "" || o.Init == "" || o.Disk == "" || o.Root == "" {
		return 0, errors.New("seal: kernel, init, disk and root are required")
	}
	work, err := os.MkdirTemp("", "cfsboot-seal-")
	if err != nil {
		return 0, fmt.Errorf("seal: %w", err)
	}
	defer os.RemoveAll(work)
	initrd := filepath.Join(work, "initrd.img")
	f, err := os.Create(initrd)
	if err != nil {
		return 0, fmt.Errorf("seal: %w", err)
	}
	spec := build.Spec{Init: o.Init, ModulesDir: o.ModulesDir, Compression: "gzip"}
	if o.ModulesDir != "" {
		spec.Modules = []string{"virtio_blk"}
	}
	_, err = build.Build(f, spec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("seal: initrd: %w", err)
	}
	store := o.Store
	if store == "" {
		store = "composefs"
	}
	qemu := o.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	// no_timer_check: under TCG on a busy host the kernel's IO-APIC timer
	// check can fail and panic the boot (as on main).
	cmdline := "console=ttyS0 no_timer_check panic=-1 cfsboot.seal.root=" + o.Root + " cfsboot.seal.store=" + store
	if o.GC {
		cmdline += " cfsboot.seal.gc"
	}
	args := []string{
		"-machine", "q35", "-cpu", "max", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none", "-no-reboot",
		"-kernel", o.Kernel, "-initrd", initrd,
		"-append", cmdline,
		"-drive", "file=" + o.Disk + ",if=virtio,format=raw,cache=writeback",
	}
	accel := o.Accel
	if accel == "" {
		accel = "tcg"
	}
	cmd := exec.CommandContext(ctx, qemu, append([]string{"-accel", accel}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("seal: %w", err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("seal: start %s: %w", qemu, err)
	}
	sealed, failure, tail := follow(out, o)
	waitErr := cmd.Wait()
	switch {
	case failure != "":
		return 0, fmt.Errorf("seal: the sealing VM failed: %s", failure)
	case ctx.Err() != nil:
		return 0, fmt.Errorf("seal: %w; last console lines:\n%s", ctx.Err(), strings.Join(tail, "\n"))
	case sealed < 0:
		return 0, fmt.Errorf("seal: the sealing VM stopped (%v) without finishing; last console lines:\n%s", waitErr, strings.Join(tail, "\n"))
	case waitErr != nil:
		return sealed, fmt.Errorf("seal: %s: %w", qemu, waitErr)
	}
	return sealed, nil
}

// follow reads the console until it closes: the files sealed (-1 when the
// VM never said), its failure, and the last lines for an error message.
func follow(r io.Reader, o Options) (sealed int, failure string, tail []string) {
	sealed = -1
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if o.Console != nil {
			fmt.Fprintln(o.Console, line)
		}
		if tail = append(tail, line); len(tail) > 20 {
			tail = tail[1:]
		}
		ev, ok := inplace.ParseLine(line)
		switch {
		case !ok:
		case ev.Failure != "":
			failure = ev.Failure
		case ev.Sealed >= 0:
			sealed = ev.Sealed
		case o.Progress != nil:
			o.Progress(ev.Done, ev.Total)
		}
	}
	return sealed, failure, tail
}
