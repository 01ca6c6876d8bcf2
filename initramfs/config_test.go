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
		PanicDelay: 10, Store: "cfs/store", State: "st", TPM: TPMRequire, PCR: 12, MeasurePhases: true,
	}
	want.Digest = c.Digest
	if c.Digest.String() != digest || !reflect.DeepEqual(c, want) {
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
		{"root=/dev/vda", "composefs=<64 hex digits> is required"},
		{"composefs=xyz root=/dev/vda", "composefs=xyz: fs-verity digest"},
		{"composefs=" + digest[:63] + " root=/dev/vda", "want 64 hex digits"},
		{"composefs=" + digest, "root= is required"},
		{base + "root=", "root=: empty value"},
		{base + "init=sbin/init", "want an absolute path"},
		{base + "rd.timeout=0", "positive number"},
		{base + "rd.timeout=abc", "rd.timeout=abc"},
		{base + "rd.shell=maybe", "want 0 or 1"},
		{base + "rd.break=nowhere", "unknown stage"},
		{base + "panic=x", "panic=x"},
		{base + "rd.cfsboot.store=../etc", "without . or .."},
		{base + "rd.cfsboot.tpm=maybe", "want auto, require or off"},
		{base + "rd.cfsboot.pcr=24", "0..23"},
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
