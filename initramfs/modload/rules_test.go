package modload

import (
	"reflect"
	"strings"
	"testing"
)

func TestRulesRoundTrip(t *testing.T) {
	mods := []Module{
		{File: "libcrc32c.ko"},
		{File: "erofs.ko", When: Always, Depends: []string{"libcrc32c.ko"}},
		{File: "efivarfs.ko", When: EFI},
		{File: "virtio_blk.ko", Aliases: []string{"virtio:d00000002v*"}},
		{File: "sd_mod.ko", Depends: []string{"scsi_mod.ko", "scsi_common.ko"}, Aliases: []string{"scsi:t-0x00*", "scsi:t-0x0[47]*"}},
	}
	data, err := MarshalRules(mods)
	if err != nil {
		t.Fatal(err)
	}
	want := `# cfsboot-init: when each module of load.order loads by itself
always erofs.ko
depends erofs.ko libcrc32c.ko
efi efivarfs.ko
alias virtio_blk.ko virtio:d00000002v*
depends sd_mod.ko scsi_mod.ko scsi_common.ko
alias sd_mod.ko scsi:t-0x00*
alias sd_mod.ko scsi:t-0x0[47]*
`
	if string(data) != want {
		t.Errorf("MarshalRules:\n%s\nwant:\n%s", data, want)
	}
	got, err := ParseRules(data)
	if err != nil {
		t.Fatal(err)
	}
	// A module with no rule (libcrc32c) is only a dependency: no line.
	if !reflect.DeepEqual(got, mods[1:]) {
		t.Errorf("ParseRules(MarshalRules(m)) = %+v, want %+v", got, mods[1:])
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{"load erofs.ko\n", `line 1: unknown rule "load"`},
		{"always\n", "line 1: always takes a module file"},
		{"always a.ko b.ko\n", "always takes a module file"},
		{"alias a.ko\n", "alias takes a module file and a pattern"},
		{"alias a.ko p q\n", "alias takes a module file and a pattern"},
		{"depends a.ko\n", "depends takes a module file and its dependencies"},
		{"alias a.ko pci:v\u00e9*\n", "not printable ASCII"},
		{"# x\n\nalways ../a.ko\n", "line 3: module file \"../a.ko\": not a plain file name"},
		{"depends a.ko b/c.ko\n", `module file "b/c.ko"`},
		{"always a.ko\nefi a.ko\n", `line 2: module a.ko already loads under "always"`},
		{"alias a.ko pci:[v*\n", `'[' at 4 not closed`},
		{"alias a.ko pci:v\\\n", `ends in '\'`},
	} {
		_, err := ParseRules([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseRules(%q) = %v, want an error with %q", c.in, err, c.err)
		}
	}
}

func TestMarshalRulesRefuses(t *testing.T) {
	for _, m := range []Module{
		{File: "a b.ko"},
		{File: "a.ko", When: "sometimes"},
		{File: "a.ko", Aliases: []string{"dmi*:svnACME Inc*"}},
		{File: "a.ko", Depends: []string{"/b.ko"}},
	} {
		if data, err := MarshalRules([]Module{m}); err == nil {
			t.Errorf("MarshalRules(%+v) = %q, want an error", m, data)
		}
	}
}

// FuzzParseRules: whatever parses writes back to the same rules.
func FuzzParseRules(f *testing.F) {
	f.Add([]byte("always erofs.ko\ndepends erofs.ko libcrc32c.ko\nefi efivarfs.ko\nalias virtio_blk.ko virtio:d00000002v*\n"))
	f.Add([]byte("# c\n\n alias  sd_mod.ko\tscsi:t-0x0[47]*\r\ndepends a.ko b.ko c.ko\n"))
	f.Add([]byte("alias a.ko [\\]]\u00a0x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		mods, err := ParseRules(data)
		if err != nil {
			return
		}
		out, err := MarshalRules(mods)
		if err != nil {
			t.Fatalf("parsed rules %+v do not write back: %v", mods, err)
		}
		again, err := ParseRules(out)
		if err != nil {
			t.Fatalf("written rules do not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, mods) {
			t.Fatalf("rules changed on the round trip:\n%+v\n%+v", mods, again)
		}
	})
}
