package blockdev

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sysBlock is where the kernel lists block devices.
const sysBlock = "/sys/class/block"

// Scan probes every block device the kernel knows now.
func Scan() []Device {
	entries, _ := os.ReadDir(sysBlock)
	var devs []Device
	gpts := map[string][]Partition{}
	for _, e := range entries {
		name := e.Name()
		if size, err := os.ReadFile(filepath.Join(sysBlock, name, "size")); err == nil && strings.TrimSpace(string(size)) == "0" {
			continue // no medium: an unused loop device, an empty drive
		}
		d := Device{Path: "/dev/" + name}
		if f, err := os.Open(d.Path); err == nil {
			d.FSType, d.UUID, d.Label = Probe(f)
			f.Close()
		}
		if n, err := os.ReadFile(filepath.Join(sysBlock, name, "partition")); err == nil {
			num, _ := strconv.Atoi(strings.TrimSpace(string(n)))
			disk := parentDisk(name)
			if _, ok := gpts[disk]; !ok {
				gpts[disk] = readDiskGPT(disk)
			}
			for _, p := range gpts[disk] {
				if p.Number == num {
					d.PartUUID, d.PartLabel = p.UUID, p.Label
				}
			}
		}
		devs = append(devs, d)
	}
	return devs
}

func parentDisk(part string) string {
	target, err := filepath.EvalSymlinks(filepath.Join(sysBlock, part))
	if err != nil {
		return ""
	}
	return filepath.Base(filepath.Dir(target))
}

func readDiskGPT(disk string) []Partition {
	bs := int64(512)
	if v, err := os.ReadFile(filepath.Join(sysBlock, disk, "queue", "logical_block_size")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64); err == nil && n > 0 {
			bs = n
		}
	}
	f, err := os.Open("/dev/" + disk)
	if err != nil {
		return nil
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil
	}
	parts, _ := ReadGPT(f, size, bs)
	return parts
}

// Wait scans the block devices until one matches spec (a root= value) or
// ctx ends; then the error lists every device it saw and what it found on
// each, so a wrong UUID or a missing driver is plain to see. When several
// devices match, it fails with ErrAmbiguous naming them all.
func Wait(ctx context.Context, spec string) (Device, error) {
	return WaitLoading(ctx, spec, nil)
}

// First and longest pause between scans: a disk often shows up within
// milliseconds of its driver loading.
const (
	firstPause = 5 * time.Millisecond
	maxPause   = 100 * time.Millisecond
)

// WaitLoading is Wait that calls load (when not nil) before each scan
// with the time waited so far, to load the drivers of devices that
// appeared; an error from load ends the wait.
func WaitLoading(ctx context.Context, spec string, load func(waited time.Duration) error) (Device, error) {
	if err := ValidSpec(spec); err != nil {
		return Device{}, err
	}
	start := time.Now()
	pause := firstPause
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		if load != nil {
			if err := load(time.Since(start)); err != nil {
				return Device{}, err
			}
		}
		devs := Scan()
		if d, found, err := Match(devs, spec); found || err != nil {
			return d, err
		}
		select {
		case <-ctx.Done():
			var seen []string
			for _, d := range devs {
				seen = append(seen, d.String())
			}
			if len(seen) == 0 {
				seen = []string{"none (is the disk driver, e.g. virtio_blk, in the initrd?)"}
			}
			return Device{}, fmt.Errorf("no block device matches root=%s; devices seen: %s", spec, strings.Join(seen, "; "))
		case <-timer.C:
			pause = min(2*pause, maxPause)
			timer.Reset(pause)
		}
	}
}
