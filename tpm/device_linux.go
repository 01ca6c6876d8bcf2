package tpm

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// linuxDevice is a TPM character device: a write sends a command, the
// next read returns the whole response. It is used through the raw,
// blocking descriptor: os.File would register it with the poller and make
// it non-blocking, which turns the driver's write asynchronous and the
// following read into an empty one.
type linuxDevice struct {
	fd   int
	path string
}

func (d linuxDevice) Send(cmd []byte) ([]byte, error) {
	if _, err := unix.Write(d.fd, cmd); err != nil {
		return nil, fmt.Errorf("%s: write: %w", d.path, err)
	}
	buf := make([]byte, maxResponse)
	n, err := unix.Read(d.fd, buf)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", d.path, err)
	}
	return buf[:n], nil
}

func (d linuxDevice) Close() error { return unix.Close(d.fd) }

// openLinuxDevice opens a TPM device node (closed on exec).
func openLinuxDevice(path string) (Device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %w", path, err)
	}
	return linuxDevice{fd, path}, nil
}

// OpenDevice opens path, or the first TPM device present when path is "".
func OpenDevice(path string) (Device, error) {
	if path == "" {
		if path = waitForDevice(0); path == "" {
			return nil, fmt.Errorf("no TPM device (%s)", strings.Join(Devices, ", "))
		}
	}
	return openLinuxDevice(path)
}
