//go:build qemu

package qemutests

import (
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"cfsboot/gen/store"
)

// The power is cut (QEMU killed) at random points while a VM fills a store
// on an ext4 disk. The disk, mounted on the host afterwards (journal
// replayed), holds a store fsck finds clean, and the last image the VM
// reported committed is there.
func TestPowerCutDuringFill(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount the disk image")
	}
	dir := t.TempDir()
	initrd := HelperInitrdFile(t, fx.Kernel, "./qemu-tests/fill", "virtio_blk")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	filled := regexp.MustCompile(`FILLED (\d+) ([0-9a-f]{64})`)
	for cut := 0; cut < 3; cut++ {
		disk := filepath.Join(dir, "disk.img")
		os.Remove(disk)
		run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", disk, "256M")
		vm := Boot(t, fx.Kernel, VMOptions{Initrd: initrd, Disk: disk})
		vm.WaitFor(`FILLED 1 |FILL FAILED`)
		if vm.Has("FILL FAILED") {
			t.Fatalf("fill VM: %s", vm.tail(5))
		}
		time.Sleep(time.Duration(rng.Intn(4000)) * time.Millisecond)
		vm.Kill()
		<-vm.exited
		var last string
		for _, l := range vm.Lines() {
			if m := filled.FindStringSubmatch(l); m != nil {
				last = m[2]
			}
		}
		mnt := filepath.Join(dir, "mnt")
		os.MkdirAll(mnt, 0o755)
		run(t, "mount", "-o", "loop", disk, mnt)
		func() {
			defer run(t, "umount", mnt)
			st, err := store.OpenExisting(filepath.Join(mnt, "store"), store.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			problems, err := st.Fsck()
			if err != nil || len(problems) != 0 {
				t.Fatalf("cut %d: fsck after the power cut: %v %v", cut, problems, err)
			}
			if _, err := os.Stat(filepath.Join(mnt, "store", "images", last)); err != nil {
				t.Fatalf("cut %d: image %s, reported committed, is gone: %v", cut, last, err)
			}
			images, _ := os.ReadDir(filepath.Join(mnt, "store", "images"))
			temps, _ := filepath.Glob(filepath.Join(mnt, "store", "objects", ".tmp-*"))
			t.Logf("cut %d: after image %s; %d images and %d temporary files in the store, fsck clean", cut, last[:12], len(images)-1, len(temps))
		}()
	}
}
