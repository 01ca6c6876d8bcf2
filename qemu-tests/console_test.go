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
