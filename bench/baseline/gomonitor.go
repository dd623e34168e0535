// gomonitor: how long a goroutine ticking every millisecond stalls while
// another goroutine on the same P (GOMAXPROCS=1) is stuck in a raw system
// call or a computation; the Go side of bench/bench_monitor.c (Go's sysmon
// retakes a P from a thread in a syscall and preempts a long-running
// goroutine).
//
// usage: gomonitor [SCENARIO...]   (default: idle compute nanosleep)
//
// A heartbeat goroutine calls time.Sleep(time.Millisecond) in a loop and
// stamps each wake-up (monotonic clock), while a second goroutine does one
// of:
//
//	idle       time.Sleep for 0.5 s: nothing blocks; the heartbeat's own jitter
//	nanosleep  a 2 s sleep through syscall.Syscall(SYS_NANOSLEEP, ...)
//	compute    a 2 s loop of arithmetic on a package variable, no calls
//	           (its iteration count calibrated over 100 ms beforehand)
//
// Gaps, ticks and expected are counted as bench_monitor counts them, and
// printed in the same form, one line per scenario:
//
//	scenario=NAME seconds=S max_gap_ms=G max_gap_at_ms=A onset_gap_ms=B p99_gap_ms=P gaps_over_2ms=O ticks=N expected=E
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	tick    = time.Millisecond
	settle  = 20 * time.Millisecond
	longGap = 2 * time.Millisecond
	// Gaps that begin this soon after t0: the onset, which sysmon ends.
	onsetWindow = 2 * time.Millisecond
	maxStamps   = 1 << 16
)

var (
	base = time.Now()
	sink uint64
	// Iterations of spin per nanosecond, from calibrate.
	itersPerNs float64
)

func now() int64 { return int64(time.Since(base)) }

// spin is the computation: no calls, nothing the compiler can drop.
func spin(n int64) {
	for i := int64(0); i < n; i++ {
		sink = sink*6364136223846793005 + 1442695040888963407
	}
}

func calibrate() {
	n := int64(1000000)
	for {
		t0 := now()
		spin(n)
		d := now() - t0
		if d >= int64(100*time.Millisecond) {
			itersPerNs = float64(n) / float64(d)
			return
		}
		n *= 2
	}
}

type scenario struct {
	name string
	run  func()
}

var scenarios = []scenario{
	{"idle", func() { time.Sleep(time.Second / 2) }},
	{"compute", func() { spin(int64(2e9 * itersPerNs)) }},
	{"nanosleep", func() {
		ts := syscall.Timespec{Sec: 2}
		for {
			_, _, e := syscall.Syscall(syscall.SYS_NANOSLEEP,
				uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
			if e == 0 {
				return
			}
			if e != syscall.EINTR {
				fmt.Fprintf(os.Stderr, "gomonitor: nanosleep: %v\n", e)
				os.Exit(1)
			}
		}
	}},
}

func runScenario(s scenario) {
	stamps := make([]int64, 0, maxStamps)
	var stop int32
	var t0, t1 int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the heartbeat
		defer wg.Done()
		stamps = append(stamps, now())
		for atomic.LoadInt32(&stop) == 0 {
			time.Sleep(tick)
			if len(stamps) < maxStamps {
				stamps = append(stamps, now())
			}
		}
	}()
	go func() {
		defer wg.Done()
		time.Sleep(settle)
		t0 = now()
		s.run()
		t1 = now()
		atomic.StoreInt32(&stop, 1)
	}()
	wg.Wait()

	var gaps []int64
	var max, maxAt, onset int64
	ticks, over := 0, 0
	var long string
	for i := 1; i < len(stamps); i++ {
		if stamps[i] <= t0 || stamps[i-1] >= t1 {
			continue
		}
		g := stamps[i] - stamps[i-1]
		at := stamps[i-1] - t0
		gaps = append(gaps, g)
		if g > max {
			max, maxAt = g, at
		}
		if at < int64(onsetWindow) && g > onset {
			onset = g
		}
		if stamps[i] <= t1 {
			ticks++
		}
		if g > int64(longGap) {
			if over < 8 {
				long += fmt.Sprintf(" %.2f@%+.1f", float64(g)/1e6, float64(at)/1e6)
			}
			over++
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	var p99 int64
	if len(gaps) > 0 {
		p99 = gaps[(len(gaps)*99+99)/100-1]
	}
	if over > 0 {
		more := ""
		if over > 8 {
			more = " ..."
		}
		fmt.Fprintf(os.Stderr, "gomonitor: %s: %d gaps over 2 ms (ms@start, ms from t0):%s%s\n",
			s.name, over, long, more)
	}
	fmt.Printf("scenario=%s seconds=%.3f max_gap_ms=%.3f max_gap_at_ms=%.1f onset_gap_ms=%.3f "+
		"p99_gap_ms=%.3f gaps_over_2ms=%d ticks=%d expected=%d\n",
		s.name, float64(t1-t0)/1e9, float64(max)/1e6, float64(maxAt)/1e6, float64(onset)/1e6,
		float64(p99)/1e6, over, ticks, (t1-t0)/int64(tick))
}

func main() {
	var chosen []scenario
	for _, a := range os.Args[1:] {
		found := false
		for _, s := range scenarios {
			if s.name == a {
				chosen = append(chosen, s)
				found = true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "usage: %s [idle|compute|nanosleep]...\n", os.Args[0])
			os.Exit(2)
		}
	}
	if len(chosen) == 0 {
		chosen = scenarios
	}
	runtime.GOMAXPROCS(1)
	calibrate()
	for _, s := range chosen {
		runScenario(s)
	}
}
