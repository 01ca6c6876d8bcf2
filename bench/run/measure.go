package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Sample is one run of a command as /usr/bin/time -v reports it.
type Sample struct {
	Wall   float64 `json:"wall"`
	User   float64 `json:"user"`
	System float64 `json:"system"`
	MaxKiB int64   `json:"max_rss_kib"`
}

// Cmd is a command to time; Before (untimed) runs before each run, e.g. to
// empty a store.
type Cmd struct {
	Name   string
	Argv   []string
	Before func() error
}

// timeRun runs argv under /usr/bin/time -v, its output discarded.
func timeRun(argv []string) (Sample, error) {
	f, err := os.CreateTemp("", "bench-time-")
	if err != nil {
		return Sample{}, err
	}
	f.Close()
	defer os.Remove(f.Name())
	cmd := exec.Command("/usr/bin/time", append([]string{"-v", "-o", f.Name(), "--"}, argv...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return Sample{}, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return Sample{}, err
	}
	return parseTime(string(b))
}

// parseTime reads the fields of GNU time -v output the bench uses.
func parseTime(s string) (Sample, error) {
	var r Sample
	seen := 0
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ": ")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "User time (seconds)":
			r.User, err = strconv.ParseFloat(v, 64)
		case "System time (seconds)":
			r.System, err = strconv.ParseFloat(v, 64)
		case "Maximum resident set size (kbytes)":
			r.MaxKiB, err = strconv.ParseInt(v, 10, 64)
		case "Elapsed (wall clock) time (h:mm:ss or m:ss)":
			r.Wall, err = clock(v)
		default:
			continue
		}
		if err != nil {
			return r, fmt.Errorf("time -v %q: %w", l, err)
		}
		seen++
	}
	if seen != 4 {
		return r, fmt.Errorf("time -v output lacks fields:\n%s", s)
	}
	return r, nil
}

// clock parses [h:]m:ss.ss.
func clock(v string) (float64, error) {
	var total float64
	for _, part := range strings.Split(v, ":") {
		f, err := strconv.ParseFloat(part, 64)
		if err != nil {
			return 0, err
		}
		total = total*60 + f
	}
	return total, nil
}

// measure runs every command once untimed (warm cache) and then *runs
// times, the commands interleaved, and returns each one's samples.
func measure(cmds []Cmd) (map[string][]Sample, error) {
	got := map[string][]Sample{}
	for i := -1; i < *runs; i++ {
		for _, c := range cmds {
			if c.Before != nil {
				if err := c.Before(); err != nil {
					return nil, fmt.Errorf("%s: %w", c.Name, err)
				}
			}
			s, err := timeRun(c.Argv)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(os.Stderr, "bench: %s: %.3f s wall, %.2f s CPU, %d MiB\n", c.Name, s.Wall, s.User+s.System, s.MaxKiB>>10)
			if i >= 0 {
				got[c.Name] = append(got[c.Name], s)
			}
		}
	}
	return got, emptyTrash()
}

// median of a field over samples.
func median(ss []Sample, field func(Sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = field(s)
	}
	return med(v)
}

func wall(s Sample) float64 { return s.Wall }
func cpu(s Sample) float64  { return s.User + s.System }
func rss(s Sample) float64  { return float64(s.MaxKiB) / 1024 }

// row summarises one command's samples.
func row(group, what string, ss []Sample) *Row {
	return &Row{Group: group, What: what, Seconds: median(ss, wall), CPUSeconds: median(ss, cpu), PeakMiB: median(ss, rss), Runs: ss}
}

func emptyDir(dir string) func() error {
	return func() error {
		// The old content is moved aside and deleted after the runs: ext4
		// skips inodes freed in the last 30 s (dirty_expire_centisecs) when
		// allocating, one inode table lookup each, so deleting 20,000 files
		// right before a fill made the fill's own allocations quadratic (3
		// to 11 s of system time instead of 1.4 s).
		if _, err := os.Lstat(dir); err == nil {
			old := fmt.Sprintf("%s.old-%d", dir, len(trash))
			if err := os.Rename(dir, old); err != nil {
				return err
			}
			trash = append(trash, old)
		}
		return os.MkdirAll(filepath.Dir(dir), 0o755)
	}
}

// trash holds what emptyDir moved aside, deleted by emptyTrash.
var trash []string

func emptyTrash() error {
	for _, d := range trash {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	trash = nil
	return nil
}
