package tpm

import (
	"fmt"
	"os"
	"strings"
)

// linuxDevice is a TPM character device: a write sends a command, the
// next read returns the whole response.
type linuxDevice struct{ f *os.File }

func (d linuxDevice) Send(cmd []byte) ([]byte, error) {
	if _, err := d.f.Write(cmd); err != nil {
		return nil, fmt.Errorf("%s: %w", d.f.Name(), err)
	}
	buf := make([]byte, maxResponse)
	n, err := d.f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.f.Name(), err)
	}
	return buf[:n], nil
}

func (d linuxDevice) Close() error { return d.f.Close() }

// openLinuxDevice opens a TPM device node (closed on exec).
func openLinuxDevice(path string) (Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %w", path, err)
	}
	return linuxDevice{f}, nil
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
