// gospawn: cost of spawning, finishing and joining goroutines, in batches
// of 1000 (wg.Add(batch); start batch goroutines; wg.Wait(); verify).
//
// usage: gospawn [TOTAL_GOROUTINES]   (default 1000000)
//
// GOMAXPROCS is left at its default (the GOMAXPROCS env var applies).
// Reports total time / goroutines, best of 3 runs, as
//
//	go_spawn <ns> ns/spawn
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

const (
	runs      = 3
	batchSize = 1000
)

// work is the trivial per-goroutine computation; verified by the spawner.
func work(batch, i int) int {
	return i*i + 7*batch + 1
}

// oneRun spawns total goroutines in batches and returns ns per goroutine,
// or an error if any result is wrong.
func oneRun(total int) (float64, error) {
	var wg sync.WaitGroup
	results := make([]int, batchSize)
	start := time.Now()
	for done, batch := 0, 0; done < total; batch++ {
		n := total - done
		if n > batchSize {
			n = batchSize
		}
		wg.Add(n)
		for i := 0; i < n; i++ {
			go func(b, idx int) {
				results[idx] = work(b, idx)
				wg.Done()
			}(batch, i)
		}
		wg.Wait()
		for i := 0; i < n; i++ {
			if results[i] != work(batch, i) {
				return 0, fmt.Errorf("batch %d index %d: got %d want %d",
					batch, i, results[i], work(batch, i))
			}
		}
		done += n
	}
	elapsed := time.Since(start)
	return float64(elapsed.Nanoseconds()) / float64(total), nil
}

func main() {
	total := 1000000
	if len(os.Args) > 2 {
		fmt.Fprintf(os.Stderr, "usage: %s [TOTAL_GOROUTINES]\n", os.Args[0])
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "gospawn: bad goroutine count %q\n", os.Args[1])
			os.Exit(2)
		}
		total = v
	}

	best := 0.0
	for r := 0; r < runs; r++ {
		ns, err := oneRun(total)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gospawn: verification failed: %v\n", err)
			os.Exit(1)
		}
		if r == 0 || ns < best {
			best = ns
		}
	}
	fmt.Printf("go_spawn %.2f ns/spawn\n", best)
}
