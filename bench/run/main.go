// Command run is `make bench`: it times cfsboot against the limit (one
// core of openssl over the same bytes) and the alternatives (mkcomposefs,
// run from a Debian root made by bench/tools-root.sh) in the same run,
// each command a whole process under /usr/bin/time -v, the median of
// -runs runs with the comparisons interleaved so that load on this shared
// machine hits them alike. It prints one table and writes results.json.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	runs    = flag.Int("runs", 5, "runs of each command; the table shows medians")
	cache   = flag.String("cache", ".cache/bench", "where trees, stores, tool roots and binaries live")
	out     = flag.String("json", "bench/results.json", "results file")
	scale   = flag.String("scale", "10000,100000", "comma-separated entry counts of the scale trees (1000000 takes ~10 GB of inodes and long)")
	boots   = flag.Bool("boot", true, "compare initrds: sizes and boots in QEMU (needs the qemu-tests fixtures)")
	skipThr = flag.Bool("skip-throughput", false, "skip the 1 GiB throughput comparisons")
)

// Row is one line of the table.
type Row struct {
	Group      string             `json:"group"`
	What       string             `json:"what"`
	Seconds    float64            `json:"seconds"`               // median wall (guest seconds for boots)
	CPUSeconds float64            `json:"cpu_seconds,omitempty"` // median user+system
	MBps       float64            `json:"mb_per_s,omitempty"`
	USPerEntry float64            `json:"us_per_entry,omitempty"`
	KiBEntry   float64            `json:"kib_per_entry,omitempty"` // peak RSS added per entry from the previous scale
	PeakMiB    float64            `json:"peak_mib,omitempty"`
	SizeMiB    float64            `json:"size_mib,omitempty"`
	VsLimit    string             `json:"vs_limit,omitempty"` // "wall x / cpu x" against the group's limit
	Vs         map[string]float64 `json:"vs,omitempty"`       // wall (or size) ratio to each alternative
	Runs       []Sample           `json:"runs,omitempty"`
}

// Results is bench/results.json.
type Results struct {
	Date    string   `json:"date"`
	Machine string   `json:"machine"`
	Load    []string `json:"load_average"` // before and after
	Rows    []*Row   `json:"rows"`
}

var results Results

// unmounts undoes the mounts in force (last first), also when the bench
// is interrupted.
var (
	unmountMu sync.Mutex
	unmounts  []string
)

func mounted(target string) {
	unmountMu.Lock()
	unmounts = append(unmounts, target)
	unmountMu.Unlock()
}

func unmount(target string) {
	unmountMu.Lock()
	defer unmountMu.Unlock()
	if i := slices.Index(unmounts, target); i >= 0 {
		unmounts = slices.Delete(unmounts, i, i+1)
		sh("umount", target)
	}
}

func unmountAll() {
	unmountMu.Lock()
	defer unmountMu.Unlock()
	for i := len(unmounts) - 1; i >= 0; i-- {
		sh("umount", unmounts[i])
	}
	unmounts = nil
}

func main() {
	flag.Parse()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		unmountAll()
		os.Exit(1)
	}()
	defer unmountAll()
	err := run()
	if terr := emptyTrash(); err == nil {
		err = terr
	}
	if err != nil {
		unmountAll()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := os.MkdirAll(*cache, 0o755); err != nil {
		return err
	}
	results.Date = time.Now().UTC().Format(time.RFC3339)
	results.Machine = machine()
	results.Load = append(results.Load, loadavg())
	cfsboot := filepath.Join(*cache, "cfsboot")
	if err := sh("go", "build", "-o", cfsboot, "./cmd/cfsboot"); err != nil {
		return err
	}
	var tools *chroot
	if root, err := toolsRoot("composefs"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: no mkcomposefs to compare with: %v\n", err)
	} else {
		tools = &chroot{root: root}
	}
	if !*skipThr {
		if err := throughput(cfsboot, tools); err != nil {
			return err
		}
	}
	prev := map[string]scalePoint{}
	for _, f := range strings.Split(*scale, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("-scale %q: %w", f, err)
		}
		if err := scaleRows(cfsboot, tools, n, prev); err != nil {
			return err
		}
	}
	if *boots {
		if err := bootRows(); err != nil {
			return err
		}
	}
	results.Load = append(results.Load, loadavg())
	printTable(os.Stdout)
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

func sh(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%s, %d cores, Linux %s", model, runtime.NumCPU(), strings.TrimSpace(string(kernel)))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// tree makes (once) a gentree tree; entries 0 is the throughput tree.
func tree(entries int) (string, error) {
	dir := filepath.Join(*cache, "tree")
	args := []string{"run", "./bench/gentree"}
	if entries > 0 {
		dir = filepath.Join(*cache, fmt.Sprintf("scale-%d", entries))
		args = append(args, fmt.Sprintf("-entries=%d", entries))
	}
	if _, err := os.Stat(dir + ".done"); err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	if err := sh("go", append(args, dir)...); err != nil {
		return "", err
	}
	return dir, os.WriteFile(dir+".done", nil, 0o644)
}

// treeBytes is the total size of the regular files under dir.
func treeBytes(dir string) (int64, error) {
	var total int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return err
	})
	return total, err
}

func printTable(w io.Writer) {
	fmt.Fprintf(w, "\n%s; load average %s (before, after)\n\n", results.Machine, strings.Join(results.Load, " / "))
	fmt.Fprintln(w, "| what | seconds | CPU s | MB/s | µs/entry | peak MiB | KiB/entry | size MiB | vs limit (wall / CPU) | vs alternatives |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
	num := func(v float64, f string) string {
		if v == 0 {
			return ""
		}
		return fmt.Sprintf(f, v)
	}
	for _, r := range results.Rows {
		var vs []string
		keys := make([]string, 0, len(r.Vs))
		for k := range r.Vs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			vs = append(vs, fmt.Sprintf("%.2fx %s", r.Vs[k], k))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.What, num(r.Seconds, "%.3f"), num(r.CPUSeconds, "%.2f"),
			num(r.MBps, "%.0f"), num(r.USPerEntry, "%.1f"), num(r.PeakMiB, "%.0f"), num(r.KiBEntry, "%.2f"), num(r.SizeMiB, "%.1f"), r.VsLimit, strings.Join(vs, ", "))
	}
}
