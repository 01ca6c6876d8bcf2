// Package parallel runs independent work items on a fixed number of
// goroutines.
package parallel

import (
	"sync"
	"sync/atomic"
)

// Each calls fn for every item, on workers goroutines, and returns the
// first error (the remaining items still run: each is independent).
// Workers take the next item by index, not from a channel: tens of
// thousands of small files would otherwise cost a goroutine hand-off each.
func Each[T any](items []T, workers int, fn func(T) error) error {
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		once  sync.Once
		first error
	)
	for w := 0; w < min(max(workers, 1), len(items)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(items)); i = next.Add(1) - 1 {
				if err := fn(items[i]); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	return first
}
