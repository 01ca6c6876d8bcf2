package blockdev

import (
	"context"
	"errors"
	"testing"
	"time"
)

// WaitLoading calls load before every scan with the time waited; load's
// error ends the wait.
func TestWaitLoadingCallsLoad(t *testing.T) {
	const absent = "UUID=0badc0de-0000-4000-8000-000000000000"
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	var waits []time.Duration
	_, err := WaitLoading(ctx, absent, func(waited time.Duration) error {
		waits = append(waits, waited)
		return nil
	})
	if err == nil {
		t.Fatalf("found a device for %s", absent)
	}
	// Pauses of 5, 10, 20, ... ms between scans (the host's scans take
	// their own time, so only the count is checked, loosely).
	if len(waits) < 3 {
		t.Fatalf("load called %d times in 400 ms: %v", len(waits), waits)
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] <= waits[i-1] {
			t.Errorf("waited times not increasing: %v", waits)
		}
	}

	stop := errors.New("driver failed")
	_, err = WaitLoading(context.Background(), absent, func(time.Duration) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("WaitLoading = %v, want load's error", err)
	}
}
