package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"cfsboot/deploy"
)

func execute(c *cobra.Command, args ...string) (string, error) {
	var out, progress bytes.Buffer
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&progress)
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.Execute()
	return out.String(), err
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"8G": 8 << 30, "512M": 512 << 20, "512MiB"[:4]: 512 << 20, "1048576": 1 << 20, "2t": 2 << 40, "64KB": 64 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "8X", "1.5G", "9999999999T"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestDeployCommandsUsage(t *testing.T) {
	esp := t.TempDir()
	os.MkdirAll(filepath.Join(esp, "loader"), 0o755)
	os.WriteFile(filepath.Join(esp, deploy.LoaderConf), deploy.LoaderConfig("debian", 3), 0o644)
	for _, c := range []struct {
		cmd  *cobra.Command
		args []string
		want string
	}{
		{newDeployCmd(), []string{"--esp", esp, "--keep", "0", "oci:x"}, "--keep"},
		{newDeployCmd(), []string{"--esp", esp, "--root", t.TempDir(), "oci:x"}, "--cmdline"},
		{newDeployCmd(), []string{"--esp", esp, "--root", t.TempDir(), "--cmdline", "root=x", "--keys", filepath.Join(esp, "none"), "oci:x"}, "--keys"},
		{newInstallCmd(), []string{"--image", "oci:x", "--disk", filepath.Join(t.TempDir(), "d"), "--size", "64M", "--keys", filepath.Join(esp, "none")}, "--keys"},
		{newInstallCmd(), []string{"--image", "oci:x", "--disk", filepath.Join(t.TempDir(), "d"), "--size", "-1"}, "size"},
	} {
		_, err := execute(c.cmd, c.args...)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: %v; want a usage error about %s", c.cmd.Name(), c.args, err, c.want)
		}
	}
}

func TestStatusAndRollbackCommands(t *testing.T) {
	esp := t.TempDir()
	os.MkdirAll(filepath.Join(esp, "loader"), 0o755)
	os.MkdirAll(filepath.Join(esp, deploy.EntryDir), 0o755)
	os.WriteFile(filepath.Join(esp, deploy.LoaderConf), deploy.LoaderConfig("debian", 3), 0o644)
	for _, n := range []string{"debian-1-aaaaaaaaaaaa.efi", "debian-2-bbbbbbbbbbbb+1-2.efi", "debian-3-cccccccccccc+0-3.efi", "other-9-dddddddddddd.efi"} {
		os.WriteFile(filepath.Join(esp, deploy.EntryDir, n), []byte("MZ"), 0o644)
	}
	out, err := execute(newStatusCmd(), "--esp", esp, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st deploy.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Default != "debian-2-bbbbbbbbbbbb.efi" || st.Rollback != "debian-1-aaaaaaaaaaaa.efi" || len(st.Entries) != 3 {
		t.Errorf("status: %+v", st)
	}
	if last := st.Entries[2]; !last.Bad || last.TriesLeft == nil || *last.TriesLeft != 0 {
		t.Errorf("the failed entry: %+v", last)
	}
	if st.Entries[1].TriesLeft != nil || !st.Entries[1].Blessed {
		t.Errorf("the blessed entry: %+v", st.Entries[1])
	}
	if out, err := execute(newRollbackCmd(), "--esp", esp); err != nil || out != "default: debian-4-aaaaaaaaaaaa.efi\n" {
		t.Errorf("rollback: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(esp, deploy.EntryDir, "debian-4-aaaaaaaaaaaa.efi")); err != nil {
		t.Errorf("rollback did not rename: %v", err)
	}
	out, err = execute(newStatusCmd(), "--esp", esp)
	if err != nil || !strings.Contains(out, "default:  debian-4-aaaaaaaaaaaa.efi\nrollback: debian-2-bbbbbbbbbbbb.efi\n") {
		t.Errorf("status text: %v\n%s", err, out)
	}
}

func TestCarriedCmdline(t *testing.T) {
	got := deploy.CarriedCmdline("BOOT_IMAGE=/vmlinuz initrd=\\x composefs=0123 root=PARTUUID=abc rw console=ttyS0 composefs.digest=v1-sha256:00\n")
	if got != "root=PARTUUID=abc rw console=ttyS0" {
		t.Errorf("CarriedCmdline = %q", got)
	}
}
