package qemutests

import (
	"bytes"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func next(c *Console, pattern string, timeout time.Duration) (string, bool) {
	return c.Next(regexp.MustCompile(pattern), timeout)
}

// A finished stream: every wait is answered at once, in order.
func TestConsoleNextKeepsOrder(t *testing.T) {
	var log bytes.Buffer
	c := NewConsole(strings.NewReader("boot\r\nstage mount\nTESTINIT a\nstage root\nTESTINIT b\n"), &log)
	<-c.Done()
	steps := []struct {
		pattern string
		want    string // "" when the wait must fail
	}{
		{`^stage `, "stage mount"},
		{`^boot`, ""},              // before the previous match
		{`TESTINIT`, "TESTINIT a"}, // the failed wait did not move the position
		{`TESTINIT a`, ""},         // a line matches one wait only
		{`^stage `, "stage root"},
		{`TESTINIT`, "TESTINIT b"},
		{`.`, ""}, // nothing after the last line
	}
	for _, s := range steps {
		got, ok := next(c, s.pattern, time.Minute)
		if ok != (s.want != "") || got != s.want {
			t.Errorf("Next(%q) = %q, %v; want %q", s.pattern, got, ok, s.want)
		}
	}
	if !c.Has(regexp.MustCompile(`^boot$`)) {
		t.Error("Has does not see lines before the position (or kept the \\r)")
	}
	if got := c.Tail(2); got != "stage root\nTESTINIT b" {
		t.Errorf("Tail(2) = %q", got)
	}
	if log.String() != "boot\nstage mount\nTESTINIT a\nstage root\nTESTINIT b\n" {
		t.Errorf("log copy: %q", log.String())
	}
}

// A live stream: a wait sees lines that arrive after it started, and
// gives up at its timeout or when the stream ends.
func TestConsoleNextWaits(t *testing.T) {
	r, w := io.Pipe()
	c := NewConsole(r, nil)
	go func() {
		time.Sleep(50 * time.Millisecond)
		io.WriteString(w, "early\nlate line\n")
	}()
	if got, ok := next(c, `^late`, time.Minute); !ok || got != "late line" {
		t.Fatalf("Next(late) = %q, %v", got, ok)
	}
	start := time.Now()
	if _, ok := next(c, `^early`, 100*time.Millisecond); ok {
		t.Error("matched a line before the previous match")
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Error("a wait on a live stream gave up before its timeout")
	}
	go func() {
		io.WriteString(w, "unrelated\n")
		w.Close()
	}()
	start = time.Now()
	if _, ok := next(c, `never`, time.Minute); ok || time.Since(start) > 30*time.Second {
		t.Error("a wait did not end with the stream")
	}
	if got := c.Lines(); !slices.Equal(got, []string{"early", "late line", "unrelated"}) {
		t.Errorf("Lines() = %q", got)
	}
}

func TestParseMountInfo(t *testing.T) {
	// The composefs root as the VM shows it: "ro" appears inside
	// "sysroot", so only whole options count.
	line := `31 1 0:27 / / ro,relatime - overlay composefs ro,lowerdir+=/run/cfsboot/image,datadir+=/sysroot/composefs/objects,redirect_dir=on,metacopy=on,verity=require`
	m, err := ParseMountInfo(line)
	if err != nil {
		t.Fatal(err)
	}
	if m.MountPoint != "/" || m.FSType != "overlay" || m.Source != "composefs" {
		t.Errorf("parsed %+v", m)
	}
	if !slices.Equal(m.MountOptions, []string{"ro", "relatime"}) {
		t.Errorf("mount options %q", m.MountOptions)
	}
	if !slices.Contains(m.SuperOptions, "verity=require") || len(m.SuperOptions) != 6 {
		t.Errorf("super options %q", m.SuperOptions)
	}

	rw, err := ParseMountInfo(`31 1 0:27 / / rw,relatime shared:1 master:2 - overlay composefs rw,datadir+=/sysroot/composefs/objects`)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(rw.MountOptions, "ro") || slices.Contains(rw.SuperOptions, "ro") {
		t.Errorf("found ro in a read-write mount: %+v", rw)
	}

	spaced, err := ParseMountInfo(`40 31 253:0 / /mnt/my\040disk rw - ext4 /dev/vda\134x rw`)
	if err != nil {
		t.Fatal(err)
	}
	if spaced.MountPoint != "/mnt/my disk" || spaced.Source != `/dev/vda\x` {
		t.Errorf("escapes not undone: %+v", spaced)
	}

	for _, bad := range []string{"", "31 1 0:27 / / ro", "31 1 0:27 / / ro - overlay", "31 1 - / / ro - overlay composefs ro", "31 1 0:27 / / ro - overlay composefs ro extra"} {
		if _, err := ParseMountInfo(bad); err == nil {
			t.Errorf("ParseMountInfo(%q) accepted", bad)
		}
	}
}
