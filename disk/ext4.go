package disk

import "fmt"

// MakeExt4 makes an ext4 filesystem with the fs-verity feature in the
// partition of disk (a file or device path) that starts at offset and is
// size bytes long, filled from the host directory staging (mkfs.ext4 -d).
// Files are copied as they are: fs-verity is enabled later, by a kernel
// that has it.
func MakeExt4(disk string, offset, size int64, uuid GUID, label, staging string) error {
	if offset%4096 != 0 || size%4096 != 0 {
		return fmt.Errorf("ext4 at %d (+%d) is not 4 KiB aligned", offset, size)
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-O", "verity", "-L", label, "-U", uuid.String(),
		"-E", fmt.Sprintf("offset=%d,nodiscard", offset)}
	if staging != "" {
		args = append(args, "-d", staging)
	}
	args = append(args, disk, fmt.Sprint(size/4096))
	return runTool("mkfs.ext4", args...)
}
