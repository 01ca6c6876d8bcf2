package parallel

import (
	"errors"
	"sync/atomic"
	"testing"
)

func TestEach(t *testing.T) {
	var sum atomic.Int64
	items := make([]int, 1000)
	for i := range items {
		items[i] = i
	}
	if err := Each(items, 3, func(i int) error { sum.Add(int64(i)); return nil }); err != nil || sum.Load() != 499500 {
		t.Fatalf("%v %d", err, sum.Load())
	}
	boom := errors.New("boom")
	if err := Each(items, 0, func(i int) error {
		if i == 500 {
			return boom
		}
		return nil
	}); err != boom {
		t.Fatalf("error %v", err)
	}
}
