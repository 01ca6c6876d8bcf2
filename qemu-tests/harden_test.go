//go:build qemu

package qemutests

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/tpm"
)

// TestHardenDebugShellMeasured: rd.break stops in a shell that is measured
// first (debug-shell into PCR 11 and PCR 15, in the log too); the boot
// that continues carries it, so PCR 15 is not the clean boot's value, and
// the log still replays.
func TestHardenDebugShellMeasured(t *testing.T) {
	t.Parallel()
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"), TPM: true,
		Append: cmdline(fx.Digest.String(), "rd.break=verify", "rd.cfsboot.tpm=require")})
	vm.WaitFor(`cfsboot: rd.break=verify: measuring debug-shell into PCR 11 and PCR 15 before the shell starts`)
	vm.WaitFor(`cfsboot: measured "debug-shell" into PCR 11`)
	vm.WaitFor(`cfsboot: measured "debug-shell" into PCR 15`)
	vm.WaitFor(`cfsboot: rd.break=verify: starting debug shell`)
	vm.WaitFor(`Enter 'help' for a list of built-in commands`)
	vm.Send("exit")
	vm.WaitFor(`cfsboot: rd.break=verify: continuing the boot; it is measured as debugged`)
	vm.WaitFor(`cfsboot: measured "composefs:` + fx.Digest.String() + `" into PCR 15`)
	read := vm.WaitFor(`TESTINIT pcr read: `)
	logLine := vm.WaitFor(`TESTINIT pcr log: `)
	vm.WaitExit()
	var vals []pcrLine
	if err := json.Unmarshal([]byte(read[strings.Index(read, "["):]), &vals); err != nil || len(vals) == 0 {
		t.Fatalf("pcr read output %q: %v", read, err)
	}
	if !strings.Contains(logLine, `"match":true`) || strings.Contains(logLine, `"match":false`) {
		t.Errorf("the log does not replay to the PCRs: %s", logLine)
	}
	for _, v := range vals {
		b, _ := tpm.BankByName(v.Bank)
		zero := make([]byte, b.Hash.Size())
		shell := tpm.EventDigests([]tpm.Bank{b}, []byte("debug-shell"))[0].Value
		want := tpm.ExtendValue(b, zero, shell) // no stub, no measure-phases: only the shell in PCR 11
		if v.PCR == 15 {
			cfs := tpm.EventDigests([]tpm.Bank{b}, []byte(tpm.ComposefsEvent(fx.Digest.Sum())))[0].Value
			want = tpm.ExtendValue(b, want, cfs)
			if v.Value == hex.EncodeToString(tpm.PredictComposefs(fx.Digest.Sum(), b)) {
				t.Errorf("PCR 15 %s looks like a clean boot after a debug shell", v.Bank)
			}
		}
		if v.Value != hex.EncodeToString(want) {
			t.Errorf("PCR %d %s = %s, want %x (debug-shell measured first)", v.PCR, v.Bank, v.Value, want)
		}
	}
}

// TestHardenState: the state the disk holds is mounted nosuid,nodev, and
// with rd.cfsboot.etc=transient the persistent /etc upper layer is not used
// (while /var still persists).
func TestHardenState(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: cmdline(fx.Digest.String())})
	for _, m := range []string{"/etc", "/var", "/sysroot"} {
		opts := vm.WaitFor(`TESTINIT mount ` + m + `: `)
		for _, want := range []string{"nosuid", "nodev"} {
			if !hasOption(opts, want) {
				t.Errorf("%s lacks %s: %s", m, want, opts)
			}
		}
	}
	vm.WaitFor(`TESTINIT etc kept: no`)
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()
	// The first boot wrote /etc/testinit-written into the persistent upper layer.
	vm = Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: cmdline(fx.Digest.String(), "rd.cfsboot.etc=transient")})
	vm.WaitFor(`cfsboot: rd.cfsboot.etc=transient: /etc changes live in memory`)
	vm.WaitFor(`TESTINIT etc kept: no`)
	vm.WaitFor(`TESTINIT etc writable: yes`)
	vm.WaitFor(`TESTINIT var boot count: 2$`)
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()
}

func hasOption(line, opt string) bool {
	opts := line[strings.LastIndex(line, ": ")+2:]
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// TestHardenStateSymlinkEscape: an absolute symlink planted on the disk as
// the deployment's /var state directory fails the boot instead of binding
// what it names.
func TestHardenStateSymlinkEscape(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	deploy := "/state/deploy/" + fx.Digest.String()
	for _, d := range []string{"/state", "/state/deploy", deploy} {
		Debugfs(t, disk, "mkdir "+d)
	}
	Debugfs(t, disk, "symlink "+deploy+"/var /composefs")
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: cmdline(fx.Digest.String())})
	expectFailure(t, vm, "state", "/var state in /sysroot/state: deploy/"+fx.Digest.String()+"/var: a symlink leads out of the directory")
}

// TestHardenImageNotAFile: a FIFO or a device node with the image's name
// is refused at once; opening it would hang PID 1 or open the device.
func TestHardenImageNotAFile(t *testing.T) {
	t.Parallel()
	image := "composefs/images/" + fx.Digest.String()
	for _, c := range []struct{ node, want string }{
		{"p", "found a FIFO, not a regular file"},
		{"c 5 1", "found a character device, not a regular file"},
	} {
		disk := fx.Disk(t, "sealed")
		RemoveFile(t, disk, image)
		// debugfs' mknod takes a name in the current directory only.
		cmds := filepath.Join(t.TempDir(), "debugfs.cmds")
		os.WriteFile(cmds, []byte("cd /composefs/images\nmknod "+fx.Digest.String()+" "+c.node+"\n"), 0o644)
		run(t, "debugfs", "-w", "-f", cmds, disk)
		vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: cmdline(fx.Digest.String())})
		expectFailure(t, vm, "verify", c.want)
	}
}
