package initramfs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseCmdline(t *testing.T) {
	base := "composefs=" + digest + " root=LABEL=cfsroot"
	c, err := ParseCmdline(SplitCmdline(base + ` console=ttyS0 ro rootfstype=ext4 rootflags=noatime init=/usr/lib/systemd/systemd rd.timeout=5 rd.shell rd.break=verify panic=10 rd.cfsboot.store=cfs/store rd.cfsboot.state=/st/ rd.cfsboot.tpm=require rd.cfsboot.pcr=12 rd.cfsboot.measure-phases=1 quiet`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Root: "LABEL=cfsroot", RootFSType: "ext4", RootFlags: "noatime", ReadOnly: true,
		Init: "/usr/lib/systemd/systemd", RootTimeout: 5 * time.Second, Shell: true, Break: StageVerify,
		Reboot: true, PanicDelay: 10, Store: "cfs/store", State: "st", TPM: TPMRequire, PCR: 12, MeasurePhases: true, Var: VarDeploy,
	}
	want.Images = c.Images
	if len(c.Images) != 1 || c.Images[0].String() != "composefs="+digest || !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	// Later words win; defaults apply.
	c, err = ParseCmdline(SplitCmdline(base + " ro rw rd.shell=0"))
	if err != nil || c.ReadOnly || c.Shell || c.Store != "composefs" || c.TPM != TPMAuto || c.PCR != 15 || c.RootTimeout != 30*time.Second {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestParseCmdlineRejects(t *testing.T) {
	base := "composefs=" + digest + " root=/dev/vda "
	for _, c := range []struct{ cmdline, want string }{
		{"root=/dev/vda", "composefs.digest=v1-sha512-12:<hex> (or sha256) or composefs=<64 or 128 hex digits> is required"},
		{"composefs=xyz root=/dev/vda", "kernel command line: composefs=xyz: "},
		{"composefs=" + digest[:63] + " root=/dev/vda", "kernel command line: composefs=" + digest[:63] + ": "},
		{"composefs.digest=v1-sha512-12:" + digest + " root=/dev/vda", "kernel command line: composefs.digest=v1-sha512-12:" + digest + ": "},
		{"composefs.digest=v3-sha256-12:" + digest + " root=/dev/vda", "unsupported format version"},
		{base + "composefs.digest=v1-sha256-12:" + digest[:63], "composefs.digest=v1-sha256-12:" + digest[:63] + ": "},
		{base + "rd.cfsboot.var=tmp", "want deploy, shared"},
		{"composefs=" + digest, "root= is required"},
		{base + "root=", "root=: empty value"},
		{base + "init=sbin/init", "want an absolute path"},
		{base + "rd.timeout=0", "from 1 to 3600"},
		{base + "rd.timeout=10000000000", "from 1 to 3600"}, // overflowed into a negative duration
		{base + "rd.timeout=3601", "from 1 to 3600"},
		{base + "panic=99999999999", "from -86400 to 86400"},
		{base + "rd.cfsboot.pcr=18446744073709551617", "from 0 to 23"},
		{base + "rd.cfsboot.pcr=-1", "from 0 to 23"},
		{base + "rd.break=early", "cannot stop there"},
		{base + "rd.break=cmdline", "cannot stop there"},
		{base + "rd.cfsboot.etc=maybe", "want persistent, transient"},
		{base + "rd.timeout=abc", "rd.timeout=abc"},
		{base + "rd.shell=maybe", "want 0 or 1"},
		{base + "rd.break=nowhere", "unknown stage"},
		{base + "panic=x", "panic=x"},
		{base + "rd.cfsboot.store=../etc", "without . or .."},
		{base + "rd.cfsboot.tpm=maybe", "want auto, require, off"},
		{base + "rd.cfsboot.pcr=24", "from 0 to 23"},
		{base + "rd.cfsboot.bogus=1", "unknown cfsboot option"},
		{base + "ro=1", "takes no value"},
	} {
		_, err := ParseCmdline(SplitCmdline(c.cmdline))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.cmdline, err, c.want)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline(` a  b="c d" "e f"` + "\n")
	if want := []string{"a", "b=c d", "e f"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
}

func TestParseCmdlineValues(t *testing.T) {
	base := "composefs=" + digest + " root=/dev/vda "
	for cmdline, want := range map[string]func(Config) bool{
		"rd.break":                  func(c Config) bool { return c.Break == StageSwitch }, // dracut: before switch_root
		"rd.break=tpm":              func(c Config) bool { return c.Break == StageTPM },
		"panic=-1":                  func(c Config) bool { return c.Reboot && c.PanicDelay == 0 },
		"panic=0":                   func(c Config) bool { return !c.Reboot },
		"rd.timeout=3600":           func(c Config) bool { return c.RootTimeout == time.Hour },
		"rd.cfsboot.etc=transient":  func(c Config) bool { return c.Etc == EtcTransient && c.EtcMount() == "transient" },
		"rd.cfsboot.etc=persistent": func(c Config) bool { return c.EtcMount() == "overlay" },
		"quiet":                     func(c Config) bool { return c.Etc == "" && c.EtcMount() == "overlay" && c.Var == VarDeploy },
		"rd.cfsboot.var=shared":     func(c Config) bool { return c.Var == VarShared },
		// Every image entry, in the order to try them.
		"composefs.digest=v1-sha512-12:" + hex512 + " composefs.digest=?v2-sha256-12:" + hex256: func(c Config) bool {
			return imagesWords(c) == "composefs.digest=v1-sha512-12:"+hex512+" composefs.digest=?v2-sha256-12:"+hex256+" composefs="+digest
		},
	} {
		c, err := ParseCmdline(SplitCmdline(base + cmdline))
		if err != nil || !want(c) {
			t.Errorf("%s: %+v %v", cmdline, c, err)
		}
	}
}

// TestInitrdCmdlineLocksSecurityKeys: the initrd's command line is signed
// inside the UKI; the boot loader's is not. Security keys set in the
// former cannot be changed from the latter.
func TestInitrdCmdlineLocksSecurityKeys(t *testing.T) {
	other := "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	initrd := SplitCmdline("composefs=" + digest + " rd.shell=0 rd.cfsboot.tpm=require rd.cfsboot.pcr=15 rd.cfsboot.etc=transient")
	for _, kernel := range []string{
		"composefs=" + other,
		"composefs.digest=v1-sha256-12:" + digest, // naming the same image differently is a change too
		"composefs.digest=v1-sha512-12:" + hex512,
		"rd.shell",
		"rd.shell=1",
		"rd.cfsboot.tpm=off",
		"rd.cfsboot.pcr=16",
		"rd.cfsboot.etc=persistent",
	} {
		_, err := ParseBootCmdline(initrd, SplitCmdline("root=/dev/vda "+kernel))
		if err == nil || !strings.Contains(err.Error(), kernel+": conflicts with") || !strings.Contains(err.Error(), "etc/cfsboot/cmdline") {
			t.Errorf("kernel %s over the initrd's %v: %v", kernel, initrd, err)
		}
	}
	// Repeating a locked value, and setting keys that are not locked, is fine.
	c, err := ParseBootCmdline(initrd, SplitCmdline("root=/dev/vda rd.shell=no composefs="+digest+" rd.timeout=5 ro"))
	if err != nil || c.Shell || !c.ReadOnly || c.TPM != TPMRequire {
		t.Fatalf("%+v %v", c, err)
	}
	// The same with composefs.digest= in the initrd, repeated by the kernel.
	signed := SplitCmdline("composefs.digest=v1-sha512-12:" + hex512 + " composefs.digest=v1-sha256-12:" + digest)
	c, err = ParseBootCmdline(signed, SplitCmdline("root=/dev/vda composefs.digest=v1-sha512-12:"+hex512))
	if err != nil || imagesWords(c) != "composefs.digest=v1-sha512-12:"+hex512+" composefs.digest=v1-sha256-12:"+digest {
		t.Fatalf("%+v %v", c, err)
	}
	for _, kernel := range []string{"composefs=" + digest, "composefs.digest=?v1-sha512-12:" + hex512, "composefs.digest=v1-sha256-12:" + other} {
		_, err := ParseBootCmdline(signed, SplitCmdline("root=/dev/vda "+kernel))
		if err == nil || !strings.Contains(err.Error(), kernel+": conflicts with composefs.digest=v1-sha256-12:"+digest) {
			t.Errorf("kernel %s over the initrd's %v: %v", kernel, signed, err)
		}
	}
	// A key the initrd leaves out stays the kernel's to set.
	c, err = ParseBootCmdline(SplitCmdline("rd.cfsboot.tpm=require"), SplitCmdline("composefs="+digest+" root=/dev/vda rd.shell"))
	if err != nil || !c.Shell {
		t.Fatalf("%+v %v", c, err)
	}
	// A bad command line still fails closed for the failure path: the
	// initrd's rd.shell=0 wins over the kernel's rd.shell.
	if p := lenientPolicy(lockedWords(initrd, SplitCmdline("rd.shell composefs=bad"))); p.Shell {
		t.Fatal("the kernel command line turned on a shell the initrd turned off")
	}
}

// FuzzParseBootCmdline: whatever the two command lines say, the parser
// does not panic, and what it accepts is within bounds.
func FuzzParseBootCmdline(f *testing.F) {
	f.Add("rd.shell=0 composefs="+digest, "root=/dev/vda rd.timeout=10000000000 panic=-5 rd.break")
	f.Add("", "composefs="+digest+` root="LABEL=a b" rd.cfsboot.pcr=23 rd.cfsboot.etc=transient rd.break=tpm`)
	f.Add("composefs.digest=v1-sha512-12:"+hex512, "root=/dev/vda composefs.digest=v1-sha512-12:"+hex512+" composefs.digest=?v2-sha256-12:"+digest)
	f.Add("rd.shell=0", "root=/dev/vda composefs="+hex512+" composefs.digest=v1-sha256-12:"+digest+" rd.cfsboot.var=shared")
	f.Fuzz(func(t *testing.T, initrd, kernel string) {
		c, err := ParseBootCmdline(SplitCmdline(initrd), SplitCmdline(kernel))
		lenientPolicy(lockedWords(SplitCmdline(initrd), SplitCmdline(kernel)))
		if err != nil {
			return
		}
		if c.RootTimeout <= 0 || c.RootTimeout > time.Hour || c.PCR < 0 || c.PCR > 23 || c.PanicDelay < 0 || c.Root == "" {
			t.Fatalf("accepted out-of-bounds config %+v", c)
		}
		if c.Break == StageEarly || c.Break == StageCmdline {
			t.Fatalf("accepted rd.break=%s", c.Break)
		}
		if len(c.Images) == 0 {
			t.Fatal("accepted a command line naming no image")
		}
		// The signed initrd's images are the only ones booted.
		if signed, err := ComposefsArgs(SplitCmdline(initrd)); err == nil && imagesWords(c) != imagesWords(Config{Images: signed}) {
			t.Fatalf("initrd images %v, booting %v", signed, c.Images)
		}
	})
}
