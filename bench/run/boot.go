package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"cfsboot/initramfs"
)

// initrdBench is what qemu-tests' BenchmarkInitrdBoot writes.
type initrdBench struct {
	Initrds map[string]string `json:"initrds"`
	Boots   []struct {
		Initrd    string                `json:"initrd"`
		InitrdRun float64               `json:"initrd_run"`
		RootInit  float64               `json:"root_init"`
		Stages    []initramfs.StageTime `json:"stages"`
	} `json:"boots"`
}

var initrdNames = []string{"cfsboot", "initramfs-tools", "dracut"}

// bootRows compares our initrd with the ones Debian's initramfs-tools and
// dracut build for the same kernel: sizes, and boots of the Debian root in
// QEMU (guest clock, kernel start to the root's init), plus the time of
// each of cfsboot-init's stages.
func bootRows() error {
	roots := map[string]string{}
	var env []string
	for _, kind := range initrdNames[1:] {
		root, err := toolsRoot(kind)
		if err != nil {
			return err
		}
		roots[kind] = root
		env = append(env, kind+"="+root)
	}
	out, err := filepath.Abs(filepath.Join(*cache, "boot.json"))
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "test", "-tags", "qemu", "-run", "^$", "-bench", "^BenchmarkInitrdBoot$",
		fmt.Sprintf("-benchtime=%dx", *runs), "-timeout", "90m", "./qemu-tests/")
	cmd.Env = append(os.Environ(), "CFSBOOT_BENCH_ROOTS="+strings.Join(env, " "), "CFSBOOT_BENCH_OUT="+out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("BenchmarkInitrdBoot: %w", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	var ib initrdBench
	if err := json.Unmarshal(b, &ib); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	if err := sizeRows(ib.Initrds, roots["initramfs-tools"]); err != nil {
		return err
	}
	boot := map[string][]float64{}
	stages := map[string][]float64{}
	var order []string
	for _, r := range ib.Boots {
		boot[r.Initrd] = append(boot[r.Initrd], r.RootInit)
		if r.Initrd != "cfsboot" {
			continue
		}
		boot["kernel"] = append(boot["kernel"], r.InitrdRun)
		end := r.InitrdRun
		for _, st := range r.Stages {
			if _, ok := stages[st.Stage]; !ok {
				order = append(order, st.Stage)
			}
			stages[st.Stage] = append(stages[st.Stage], st.MS/1000)
			end = (st.StartMS + st.MS) / 1000
		}
		// The switch stage ends in the root's init, which logs no JSON.
		stages[initramfs.StageSwitch] = append(stages[initramfs.StageSwitch], r.RootInit-end)
	}
	g := "initrd boot (guest clock, TCG)"
	for _, name := range initrdNames {
		r := &Row{Group: g, What: "boot to the root's init: " + name, Seconds: med(boot[name]), Vs: map[string]float64{}}
		for _, other := range initrdNames {
			if other != name && len(boot[other]) > 0 && len(boot[name]) > 0 {
				r.Vs[other] = r.Seconds / med(boot[other])
			}
		}
		if len(boot[name]) > 0 {
			results.Rows = append(results.Rows, r)
		}
	}
	results.Rows = append(results.Rows, &Row{Group: g, What: "cfsboot: kernel start to the initrd's /init", Seconds: med(boot["kernel"])})
	for _, st := range append(order, initramfs.StageSwitch) {
		results.Rows = append(results.Rows, &Row{Group: g, What: "cfsboot-init stage " + st, Seconds: med(stages[st])})
	}
	return nil
}

// sizeRows reports each initrd's size, compressed and unpacked (with
// unmkinitramfs from the initramfs-tools root, which reads all three).
func sizeRows(images map[string]string, itools string) error {
	c := &chroot{root: itools}
	defer c.close()
	compressed, unpacked := map[string]float64{}, map[string]float64{}
	for _, name := range initrdNames {
		img, ok := images[name]
		if !ok {
			continue
		}
		st, err := os.Stat(img)
		if err != nil {
			return err
		}
		compressed[name] = float64(st.Size()) / (1 << 20)
		dir := filepath.Join(*cache, "initrd-"+name)
		if err := emptyDir(dir)(); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
			return err
		}
		if err := sh("cp", img, filepath.Join(dir, "initrd.img")); err != nil {
			return err
		}
		inside, err := c.bind(dir)
		if err != nil {
			return err
		}
		if err := sh("chroot", itools, "unmkinitramfs", inside+"/initrd.img", inside+"/out"); err != nil {
			return err
		}
		du, err := exec.Command("du", "-sb", filepath.Join(dir, "out")).Output()
		if err != nil {
			return fmt.Errorf("du %s: %w", dir, err)
		}
		n, err := strconv.ParseFloat(strings.Fields(string(du))[0], 64)
		if err != nil {
			return err
		}
		unpacked[name] = n / (1 << 20)
	}
	for _, kind := range []struct {
		what  string
		sizes map[string]float64
	}{{"compressed", compressed}, {"unpacked", unpacked}} {
		for _, name := range initrdNames {
			size, ok := kind.sizes[name]
			if !ok {
				continue
			}
			r := &Row{Group: "initrd size", What: fmt.Sprintf("initrd %s: %s", kind.what, name), SizeMiB: size, Vs: map[string]float64{}}
			for _, other := range initrdNames {
				if o, ok := kind.sizes[other]; ok && other != name {
					r.Vs[other] = size / o
				}
			}
			results.Rows = append(results.Rows, r)
		}
	}
	return nil
}

func med(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
