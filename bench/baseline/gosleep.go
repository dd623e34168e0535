// gosleep: resident memory per goroutine parked in time.Sleep.
//
// usage: gosleep [GOROUTINES]   (default 100000)
//
// Reads VmRSS, starts GOROUTINES goroutines that each sleep 60s, waits until
// every one of them has started, reads VmRSS again and reports
//
//	go_sleep_rss <bytes> B/goroutine
//
// then exits without waiting for the sleepers.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// vmRSS returns the VmRSS of this process in bytes.
func vmRSS() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		fields := strings.Fields(line[len("VmRSS:"):])
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}

func main() {
	n := 100000
	if len(os.Args) > 2 {
		fmt.Fprintf(os.Stderr, "usage: %s [GOROUTINES]\n", os.Args[0])
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "gosleep: bad goroutine count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}

	before, err := vmRSS()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gosleep: %v\n", err)
		os.Exit(1)
	}

	var started int64
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&started, 1)
			time.Sleep(60 * time.Second)
		}()
	}
	// Bounded wait, shorter than the sleep: no sleeper has woken by then.
	deadline := time.Now().Add(30 * time.Second)
	for atomic.LoadInt64(&started) < int64(n) {
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "gosleep: only %d of %d goroutines started\n",
				atomic.LoadInt64(&started), n)
			os.Exit(1)
		}
		runtime.Gosched()
	}

	after, err := vmRSS()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gosleep: %v\n", err)
		os.Exit(1)
	}
	per := float64(after-before) / float64(n)
	fmt.Printf("go_sleep_rss %.0f B/goroutine\n", per)
	os.Exit(0)
}
