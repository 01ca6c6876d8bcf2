package initramfs

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// StageTime is how long one boot stage took, on CLOCK_MONOTONIC: the clock
// of the kernel log's timestamps, so a stage lines up with the kernel's
// own lines (device probes, fs-verity, the root's init).
type StageTime struct {
	Stage   string  `json:"stage"`
	StartMS float64 `json:"start_ms"` // since the kernel started
	MS      float64 `json:"ms"`
}

// stageTimePrefix starts the log line that carries a StageTime as JSON
// (the bench reads them from the console).
const stageTimePrefix = "stage-time "

// stageTime formats a StageTime without encoding/json, which would add
// 70 KB to the init (stage names are plain ASCII constants).
func stageTime(name string, start, end time.Duration) string {
	return fmt.Sprintf(`%s{"stage":%q,"start_ms":%.3f,"ms":%.3f}`, stageTimePrefix, name, ms(start), ms(end-start))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// monotonic reads CLOCK_MONOTONIC; it cannot fail for that clock.
func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
