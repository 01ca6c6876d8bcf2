//go:build qemu

package qemutests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"cfsboot/initramfs"
)

// InitrdBoot is one boot of the Debian root through one initrd, in guest
// seconds on the kernel log's clock.
type InitrdBoot struct {
	Initrd    string                `json:"initrd"`
	InitrdRun float64               `json:"initrd_run"` // the kernel runs the initrd's /init
	RootInit  float64               `json:"root_init"`  // the root's systemd logs its first line
	Stages    []initramfs.StageTime `json:"stages,omitempty"`
}

// InitrdBench is what BenchmarkInitrdBoot writes: the initrd files and
// every boot.
type InitrdBench struct {
	Initrds map[string]string `json:"initrds"`
	Boots   []InitrdBoot      `json:"boots"`
}

var (
	kernelTime = regexp.MustCompile(`\[\s*(\d+\.\d+)\] `)
	stageLine  = regexp.MustCompile(`cfsboot: stage-time (\{.*\})`)
)

// BenchmarkInitrdBoot boots the Debian root b.N times through each initrd,
// interleaved: cfsboot's (composefs, verified, TPM), and the initrds Debian's
// initramfs-tools and dracut built for the same kernel in a copy of that
// root (CFSBOOT_BENCH_ROOTS="initramfs-tools=DIR dracut=DIR", made by
// bench/tools-root.sh), each booting a plain ext4 image of its root. It
// reports when the root's init starts and writes every boot to
// $CFSBOOT_BENCH_OUT as JSON.
func BenchmarkInitrdBoot(b *testing.B) {
	type initrd struct {
		name, image, disk, append string
		rootInit                  int // which "running in system mode" line is the root's
	}
	d := Debian(b)
	initrds := []initrd{{name: "cfsboot", image: fx.InitrdNoShell, append: cmdline(d.Digest.String()), rootInit: 1}}
	for _, kv := range strings.Fields(os.Getenv("CFSBOOT_BENCH_ROOTS")) {
		name, root, _ := strings.Cut(kv, "=")
		images, _ := filepath.Glob(filepath.Join(root, "boot", "initrd.img-*"))
		if len(images) != 1 {
			b.Fatalf("%s: want one initrd in %s/boot, found %v", name, root, images)
		}
		disk := filepath.Join(b.TempDir(), name+".ext4")
		run(b, "mkfs.ext4", "-q", "-F", "-d", root, disk, "2G")
		// dracut's initrd runs systemd too: the root's is the second.
		initrds = append(initrds, initrd{name: name, image: images[0], disk: disk, append: "root=/dev/vda rw", rootInit: map[bool]int{true: 2, false: 1}[name == "dracut"]})
	}
	var boots []InitrdBoot
	for i := 0; i < b.N; i++ {
		for _, in := range initrds {
			disk := in.disk
			if in.name == "cfsboot" {
				disk = d.Disk(b)
			}
			vm := Boot(b, fx.Kernel, VMOptions{Initrd: in.image, Disk: disk, TPM: in.name == "cfsboot", Append: in.append})
			run := InitrdBoot{Initrd: in.name, InitrdRun: guestTime(b, vm.WaitFor(`Run /init as init process`))}
			var line string
			for n := 0; n < in.rootInit; n++ {
				line = vm.WaitFor(`systemd\[1\]: systemd \d+.* running in system mode`)
			}
			run.RootInit = guestTime(b, line)
			vm.Kill()
			for _, l := range vm.Lines() {
				if m := stageLine.FindStringSubmatch(l); m != nil {
					var st initramfs.StageTime
					if err := json.Unmarshal([]byte(m[1]), &st); err != nil {
						b.Fatalf("%q: %v", l, err)
					}
					run.Stages = append(run.Stages, st)
				}
			}
			boots = append(boots, run)
		}
	}
	for _, in := range initrds {
		var sum float64
		for _, r := range boots {
			if r.Initrd == in.name {
				sum += r.RootInit
			}
		}
		b.ReportMetric(sum/float64(b.N), in.name+"-s/boot")
	}
	if out := os.Getenv("CFSBOOT_BENCH_OUT"); out != "" {
		// Ours lives in the fixture's temporary directory: keep a copy
		// for the bench to measure.
		images := map[string]string{}
		for _, in := range initrds {
			images[in.name] = in.image
		}
		images["cfsboot"] = filepath.Join(filepath.Dir(out), "initrd-cfsboot.img")
		run(b, "cp", fx.InitrdNoShell, images["cfsboot"])
		js, _ := json.MarshalIndent(InitrdBench{Initrds: images, Boots: boots}, "", "  ")
		if err := os.WriteFile(out, js, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// guestTime reads the kernel log timestamp of a console line (systemd
// puts terminal resets before it).
func guestTime(b *testing.B, line string) float64 {
	m := kernelTime.FindStringSubmatch(line)
	if m == nil {
		b.Fatalf("console line %q has no kernel timestamp", line)
	}
	t, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.Fatal(fmt.Errorf("console line %q: %w", line, err))
	}
	return t
}
