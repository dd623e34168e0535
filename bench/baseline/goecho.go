// goecho: goroutine-per-connection TCP echo server (baseline for the
// echo benchmarks).
//
// usage: goecho PORT
//
// Listens on 127.0.0.1:PORT; each connection echoes back exactly what it
// reads using a 64 KiB buffer.  Runs until SIGTERM/SIGINT, then exits 0.
// Prints nothing on stdout; errors go to stderr.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// serve echoes everything read from c back to c until EOF or error.
func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			// net.Conn.Write writes all n bytes or returns an error.
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintf(os.Stderr, "usage: %s PORT\n", os.Args[0])
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Args[1])
	if err != nil || port < 1 || port > 65535 {
		fmt.Fprintf(os.Stderr, "goecho: bad port %q\n", os.Args[1])
		os.Exit(2)
	}

	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "goecho: %v\n", err)
		os.Exit(1)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		os.Exit(0)
	}()

	for {
		c, err := ln.Accept()
		if err != nil {
			// Out of fds and similar: back off briefly and keep serving.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			fmt.Fprintf(os.Stderr, "goecho: accept: %v\n", err)
			os.Exit(1)
		}
		go serve(c)
	}
}
