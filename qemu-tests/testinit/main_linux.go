// Command testinit is /sbin/init of the QEMU tests' composefs image. It
// reports, in "TESTINIT key: value" lines, what the booted root looks like,
// then powers off. With testinit.fsck on the kernel command line it also
// checks the object store on /sysroot.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"cfsboot/gen/store"
)

func report(key string, format string, args ...any) {
	fmt.Printf("TESTINIT %s: %s\n", key, fmt.Sprintf(format, args...))
}

func main() {
	report("pid", "%d", os.Getpid())
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err == nil {
		report("root fstype", "%s", map[int64]string{unix.OVERLAYFS_SUPER_MAGIC: "overlay"}[int64(st.Type)])
	}
	report("root mountinfo", "%s", rootMountinfo())
	for _, m := range []string{"/etc", "/var", "/sysroot"} {
		report("mount "+m, "%s", mountOptions(m))
	}
	if _, err := os.Stat("/etc/testinit-written"); err == nil {
		report("etc kept", "yes")
	} else {
		report("etc kept", "no")
	}
	if err := os.WriteFile("/etc/testinit-written", []byte("ok\n"), 0o644); err != nil {
		report("etc writable", "no: %v", err)
	} else {
		report("etc writable", "yes")
	}
	if err := os.WriteFile("/usr/testinit-written", nil, 0o644); err != nil {
		report("usr writable", "no")
	} else {
		report("usr writable", "yes")
	}
	report("var boot count", "%d", bumpCounter("/var/boot-count"))
	for _, p := range []string{"/usr/share/cfsboot-test/big", "/usr/share/cfsboot-test/medium", "/etc/hostname"} {
		data, err := os.ReadFile(p)
		if err != nil {
			report("read "+p, "error: %v", err)
			continue
		}
		sum := sha256.Sum256(data)
		report("sha256 "+p, "%s", hex.EncodeToString(sum[:]))
	}
	if _, err := os.Stat("/sysroot/composefs/images"); err == nil {
		report("sysroot", "yes")
	}
	if target, err := os.Readlink("/run/systemd/volatile-root"); err == nil {
		report("volatile root", "%s", target)
	} else {
		report("volatile root", "none: %v", err)
	}
	if cmdline, _ := os.ReadFile("/proc/cmdline"); slices.Contains(strings.Fields(string(cmdline)), "testinit.fsck") {
		// The init leaves /sysroot read-only, as bootc does; tools that
		// change the store remount it, as this one does to probe fs-verity.
		if err := unix.Mount("", "/sysroot", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			report("store fsck", "error: remount /sysroot read-write: %v", err)
		}
		fsckStore("/sysroot/composefs")
	}
	if _, err := os.Stat("/run/log/systemd/tpm2-measure.log"); err == nil {
		report("measure log", "yes")
	}
	if _, err := os.Stat("/dev/tpmrm0"); err == nil {
		runCfsboot("pcr read", "pcr", "read", "--pcr", "11,15", "--json")
		runCfsboot("pcr log", "pcr", "log", "--json")
	}
	report("done", "powering off")
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// runCfsboot runs the image's cfsboot and reports its JSON output on one
// line, and its exit status.
func runCfsboot(key string, args ...string) {
	out, err := exec.Command("/usr/bin/cfsboot", args...).Output()
	var compact bytes.Buffer
	if json.Compact(&compact, out) != nil {
		compact.Write(bytes.ReplaceAll(out, []byte("\n"), []byte(" ")))
	}
	report(key, "%s", compact.String())
	if err != nil {
		report(key+" status", "%v", err)
	} else {
		report(key+" status", "ok")
	}
}

// rootMountinfo returns the /proc/self/mountinfo line of the mount on /
// (the last one: the one on top), for the test to parse.
func rootMountinfo() string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err.Error()
	}
	line := "none"
	for _, l := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(l); len(fields) > 4 && fields[4] == "/" {
			line = l
		}
	}
	return line
}

// fsckStore reports each problem the store's own check finds in the
// booted system's object store (where the kernel measures every file).
func fsckStore(dir string) {
	st, err := store.Open(dir)
	if err != nil {
		report("store fsck", "error: %v", err)
		return
	}
	problems, err := st.Fsck()
	for _, p := range problems {
		report("store problem", "%s", p)
	}
	if err != nil {
		report("store fsck", "error: %v", err)
		return
	}
	report("store fsck", "%d problems, fs-verity protected: %v", len(problems), st.Protected())
}

// mountOptions returns the per-mount options (nosuid, nodev, ...) of the
// mount at dir from mountinfo.
func mountOptions(dir string) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err.Error()
	}
	opts := "not a mount point"
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) > 5 && fields[4] == dir {
			opts = fields[5]
		}
	}
	return opts
}

func bumpCounter(path string) int {
	data, _ := os.ReadFile(path)
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	n++
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)), 0o644); err != nil {
		report("var writable", "no: %v", err)
	}
	return n
}
