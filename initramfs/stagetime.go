package initramfs

import (
	"encoding/json"
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

func stageTime(name string, start, end time.Duration) string {
	b, _ := json.Marshal(StageTime{Stage: name, StartMS: ms(start), MS: ms(end - start)})
	return stageTimePrefix + string(b)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// monotonic reads CLOCK_MONOTONIC; it cannot fail for that clock.
func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
