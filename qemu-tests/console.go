package qemutests

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Console collects the lines of a serial console stream and lets a test
// wait for lines in the order the machine printed them. It has no build
// tag so that its matcher is tested without QEMU.
type Console struct {
	mu      sync.Mutex
	lines   []string
	next    int           // the first line a wait may match: after the previous match
	closed  bool          // the stream ended: no more lines will come
	changed chan struct{} // closed (and replaced) whenever lines or closed change
	done    chan struct{} // closed when the stream ended
}

// NewConsole reads r line by line until it ends, copying each line to log
// (when not nil).
func NewConsole(r io.Reader, log io.Writer) *Console {
	c := &Console{changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			if log != nil {
				fmt.Fprintln(log, line)
			}
			c.update(func() { c.lines = append(c.lines, line) })
		}
		c.update(func() { c.closed = true })
		close(c.done)
	}()
	return c
}

func (c *Console) update(change func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	change()
	close(c.changed)
	c.changed = make(chan struct{})
}

// Done is closed when the stream has ended and every line is collected.
func (c *Console) Done() <-chan struct{} { return c.done }

// Lines returns all lines so far.
func (c *Console) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string{}, c.lines...)
}

// Next waits for the first line matching re that comes after the line the
// previous successful Next matched, and returns it. It gives up (false)
// when the stream ends or timeout passes first; a failed wait does not move
// the position.
func (c *Console) Next(re *regexp.Regexp, timeout time.Duration) (string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	c.mu.Lock()
	i := c.next
	c.mu.Unlock()
	for {
		c.mu.Lock()
		for ; i < len(c.lines); i++ {
			if re.MatchString(c.lines[i]) {
				c.next = i + 1
				line := c.lines[i]
				c.mu.Unlock()
				return line, true
			}
		}
		closed, changed := c.closed, c.changed
		c.mu.Unlock()
		if closed {
			return "", false
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", false
		}
	}
}

// Has reports whether any line so far, before or after the position,
// matches re.
func (c *Console) Has(re *regexp.Regexp) bool {
	for _, l := range c.Lines() {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

// Tail returns the last n lines, joined.
func (c *Console) Tail(n int) string {
	lines := c.Lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
