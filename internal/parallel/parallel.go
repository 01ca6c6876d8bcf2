// Package parallel runs independent work items on a fixed number of
// goroutines.
package parallel

import "sync"

// Each calls fn for every item, on workers goroutines, and returns the
// first error (the remaining items still run: each is independent).
func Each[T any](items []T, workers int, fn func(T) error) error {
	work := make(chan T)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if err := fn(it); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	return first
}
