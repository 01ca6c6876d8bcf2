// Command veritycheck is the init of a test-only initrd: the host kernel
// has no fs-verity, so the QEMU tests boot this to check, on an ext4 disk
// made with -O verity, that the kernel seals files with either algorithm
// and that what it measures (algorithm and digest) equals the userspace
// digest. It prints "VERITYCHECK ..." lines and powers off.
package main

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"cfsboot/internal/vminit"
	"cfsboot/verity"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("VERITYCHECK FAILED: %v\n", err)
	} else {
		fmt.Println("VERITYCHECK PASSED")
	}
	vminit.PowerOff()
}

func run() error {
	if err := vminit.Start(); err != nil {
		return err
	}
	if err := vminit.MountDisk("/dev/vda", "/mnt"); err != nil {
		return err
	}
	defer unix.Unmount("/mnt", 0)
	for _, alg := range verity.Algorithms {
		for _, size := range []int{0, 1, 4095, 4096, 4097, 4096 * 129, 1<<20 + 1, 9<<20 + 12345} {
			if err := check(alg, size); err != nil {
				return fmt.Errorf("%s, %d bytes: %w", alg, size, err)
			}
		}
	}
	return nil
}

// check writes a file, seals it with alg and compares the kernel's
// measurement with the userspace digest; then checks that the SHA-256-only
// Measure refuses a SHA-512 file and that sealing again with the other
// algorithm changes nothing.
func check(alg verity.Algorithm, size int) error {
	path := filepath.Join("/mnt", fmt.Sprintf("%s-%d", alg, size))
	data := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	want, err := alg.ComputeFile(path)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	if _, err := verity.MeasureSum(fd); !errors.Is(err, verity.ErrNotEnabled) {
		return fmt.Errorf("measure before sealing: %v, want ErrNotEnabled", err)
	}
	if err := verity.EnableAlgorithm(fd, alg); err != nil {
		return err
	}
	got, err := verity.MeasureSum(fd)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("kernel measured %s %s, userspace computed %s %s", got.Algorithm(), got, want.Algorithm(), want)
	}
	other := verity.SHA256
	if alg == verity.SHA256 {
		other = verity.SHA512
	}
	if err := verity.EnableAlgorithm(fd, other); err != nil {
		return fmt.Errorf("sealing a sealed file again: %w", err)
	}
	if again, err := verity.MeasureSum(fd); err != nil || again != want {
		return fmt.Errorf("after sealing again with %s: %s %s, %v", other, again.Algorithm(), again, err)
	}
	d, err := verity.Measure(fd)
	switch {
	case alg == verity.SHA256 && (err != nil || d.Sum() != want):
		return fmt.Errorf("Measure: %s, %v", d, err)
	case alg == verity.SHA512 && err == nil:
		return fmt.Errorf("Measure accepted a SHA-512 file as %s", d)
	}
	fmt.Printf("VERITYCHECK %s %d: %s\n", alg, size, got)
	return nil
}
