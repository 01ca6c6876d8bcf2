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
	boot := map[string][]float64{}   // kernel start to the root's init
	initrd := map[string][]float64{} // the initrd's /init to the root's init
	stages := map[string][]float64{}
	order := []string{"start"}
	for _, r := range ib.Boots {
		boot[r.Initrd] = append(boot[r.Initrd], r.RootInit)
		initrd[r.Initrd] = append(initrd[r.Initrd], r.RootInit-r.InitrdRun)
		if r.Initrd != "cfsboot" || len(r.Stages) == 0 {
			continue
		}
		// Before the first stage (early mounts): the kernel's exec and
		// the Go runtime's start; after the last: the root's init until
		// it logs.
		stages["start"] = append(stages["start"], r.Stages[0].StartMS/1000-r.InitrdRun)
		for _, st := range r.Stages {
			if _, ok := stages[st.Stage]; !ok {
				order = append(order, st.Stage)
			}
			stages[st.Stage] = append(stages[st.Stage], st.MS/1000)
		}
		last := r.Stages[len(r.Stages)-1]
		stages["exec"] = append(stages["exec"], r.RootInit-(last.StartMS+last.MS)/1000)
	}
	g := "initrd boot (guest clock, TCG)"
	compare := func(what string, m map[string][]float64) {
		for _, name := range initrdNames {
			if len(m[name]) == 0 {
				continue
			}
			r := &Row{Group: g, What: what + name, Seconds: med(m[name]), Vs: map[string]float64{}}
			for _, other := range initrdNames {
				if other != name && len(m[other]) > 0 {
					r.Vs[other] = r.Seconds / med(m[other])
				}
			}
			results.Rows = append(results.Rows, r)
		}
	}
	compare("kernel start to the root's init logging: ", boot)
	compare("initrd's /init to the root's init logging: ", initrd)
	what := map[string]string{"start": "/init's exec and Go runtime start, to main",
		"exec": "exec to the root's init logging (systemd's own start)"}
	for _, st := range append(order, "exec") {
		w := what[st]
		if w == "" {
			w = "stage " + st
		}
		results.Rows = append(results.Rows, &Row{Group: g, What: "cfsboot-init: " + w, Seconds: med(stages[st])})
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
