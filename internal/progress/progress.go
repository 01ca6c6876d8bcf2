// Package progress shows how far long work has come (files, bytes, rate and
// time left) on a terminal, and nothing anywhere else: a pipe, a log file or
// --quiet get no progress lines to strip.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar counts files and bytes of a job whose total size is known. A nil *Bar
// is valid and shows nothing, so callers need no checks.
type Bar struct {
	mu    sync.Mutex
	what  string
	files int
	total int
	// countFiles: the bar advances by files, not bytes (no byte total).
	countFiles bool
	bar        *progressbar.ProgressBar
}

// New returns a bar drawn on w when w is a terminal and quiet is false, and
// nil otherwise. what names the work ("hashing", "checking"), files and
// bytes are the totals to expect; with bytes 0 the bar counts files.
func New(w io.Writer, quiet bool, what string, files int, bytes int64) *Bar {
	f, ok := w.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	b := &Bar{what: what, total: files, countFiles: bytes <= 0}
	max := bytes
	if b.countFiles {
		max = int64(files)
	}
	b.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(b.describe()),
		progressbar.OptionShowBytes(bytes > 0),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
	return b
}

func (b *Bar) describe() string { return fmt.Sprintf("%s %d/%d files", b.what, b.files, b.total) }

// Add records files and bytes done (bytes are ignored by a bar that
// counts files). It is safe for concurrent use.
func (b *Bar) Add(files int, bytes int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files += files
	b.bar.Describe(b.describe())
	if b.countFiles {
		b.bar.Add(files)
	} else {
		b.bar.Add64(bytes)
	}
}

// Finish clears the bar from the terminal.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar.Finish()
}
