// gosched: cost of one runtime.Gosched() yield between two goroutines on a
// single P (GOMAXPROCS=1).
//
// usage: gosched [TOTAL_YIELDS]   (default 5000000, split evenly over the
// two goroutines)
//
// Reports total time / total Gosched calls, best of 3 runs, as
//
//	go_gosched <ns> ns/yield
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const runs = 3

// yieldLoop calls runtime.Gosched n times, then signals wg.
func yieldLoop(n int, wg *sync.WaitGroup) {
	for i := 0; i < n; i++ {
		runtime.Gosched()
	}
	wg.Done()
}

// oneRun times two goroutines yielding perHead times each and returns
// nanoseconds per yield.
func oneRun(perHead int) float64 {
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	go yieldLoop(perHead, &wg)
	go yieldLoop(perHead, &wg)
	wg.Wait()
	elapsed := time.Since(start)
	return float64(elapsed.Nanoseconds()) / float64(2*perHead)
}

func main() {
	total := 5000000
	if len(os.Args) > 2 {
		fmt.Fprintf(os.Stderr, "usage: %s [TOTAL_YIELDS]\n", os.Args[0])
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 2 {
			fmt.Fprintf(os.Stderr, "gosched: bad yield count %q\n", os.Args[1])
			os.Exit(2)
		}
		total = v
	}
	runtime.GOMAXPROCS(1)

	perHead := total / 2
	best := 0.0
	for r := 0; r < runs; r++ {
		ns := oneRun(perHead)
		if r == 0 || ns < best {
			best = ns
		}
	}
	fmt.Printf("go_gosched %.2f ns/yield\n", best)
}
