package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

func TestTerminalOnly(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	b := New(tty, false, "hashing", 2, 2<<20)
	if b == nil {
		t.Fatal("no bar on a terminal")
	}
	b.Add(1, 1<<20)
	time.Sleep(150 * time.Millisecond) // past the redraw throttle
	b.Add(1, 1<<20)
	b.Finish()
	buf := make([]byte, 4096)
	ptmx.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _ := ptmx.Read(buf)
	if out := string(buf[:n]); !strings.Contains(out, "hashing") || !strings.Contains(out, "files") {
		t.Errorf("terminal got %q", out)
	}

	if New(tty, true, "hashing", 1, 1) != nil {
		t.Error("a bar despite quiet")
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if New(w, false, "hashing", 1, 1) != nil {
		t.Error("a bar on a pipe")
	}
	if New(&bytes.Buffer{}, false, "hashing", 1, 1) != nil {
		t.Error("a bar on a buffer")
	}
	var none *Bar
	none.Add(1, 1) // a nil bar is valid
	none.Finish()
}
