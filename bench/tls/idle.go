package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

// benchIdle opens o.idle keep-alive connections that each send one request
// and then sit idle, from 127.0.0.2-9 (the per-IP limit applies to each),
// while normal traffic runs from 127.0.0.1 at 200 req/s. Every normal
// request must succeed, and every idle connection must be closed by the
// router about IdleTimeout after its answer.
func benchIdle(ctx context.Context, o options) error {
	backend, err := startBackend(o)
	if err != nil {
		return err
	}
	defer backend.Stop()
	router, err := proxybench.StartChild(proxybench.RoleFlag, "plainrouter", "-backend", backend.Addr, "-idle-timeout", o.idleTimeout.String())
	if err != nil {
		return err
	}
	defer router.Stop()
	fmt.Printf("bench/tls -mode idle: %d idle keep-alive connections to the router (IdleTimeout %s) plus 200 req/s of normal traffic — %d CPUs\n", o.idle, o.idleTimeout, numCPU())

	// Normal load for the whole run.
	normalDur := o.idleTimeout + 4*time.Second
	var normalOK, normalFail atomic.Int64
	normalDone := make(chan struct{})
	go func() {
		defer close(normalDone)
		cl := proxybench.Client(10 * time.Second)
		proxybench.OpenLoop(ctx, 200, normalDur, func(int, time.Time) {
			req, _ := http.NewRequest("GET", "http://"+router.Addr+"/", nil)
			req.Host = benchHost
			resp, err := cl.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				normalFail.Add(1)
				return
			}
			normalOK.Add(1)
		})
	}()

	var served, closedInWindow, closedEarly, closedLate, openFail atomic.Int64
	var wg sync.WaitGroup
	var closeAfter []time.Duration
	var mu sync.Mutex
	for i := 0; i < o.idle; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}, Timeout: 10 * time.Second}
			c, err := d.DialContext(ctx, "tcp", router.Addr)
			if err != nil {
				openFail.Add(1)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", benchHost)
			br := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				openFail.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			served.Add(1)
			answered := time.Now()
			c.SetReadDeadline(answered.Add(o.idleTimeout + 10*time.Second))
			_, err = br.ReadByte() // EOF when the router closes the idle connection
			after := time.Since(answered)
			mu.Lock()
			closeAfter = append(closeAfter, after)
			mu.Unlock()
			switch {
			case err == nil || after >= o.idleTimeout+10*time.Second:
				closedLate.Add(1)
			case after < o.idleTimeout-500*time.Millisecond:
				closedEarly.Add(1)
			case after <= o.idleTimeout+3*time.Second:
				closedInWindow.Add(1)
			default:
				closedLate.Add(1)
			}
		}()
	}
	wg.Wait()
	<-normalDone
	st := proxybench.Summarise(closeAfter)
	fmt.Printf("\nidle connections: %d opened and answered, %d failed to open or get their answer\n", served.Load(), openFail.Load())
	fmt.Printf("closed by the router: %d within [IdleTimeout-0.5s, IdleTimeout+3s], %d earlier, %d later or never; after their answer p50 %s, p99 %s, max %s\n",
		closedInWindow.Load(), closedEarly.Load(), closedLate.Load(), proxybench.Ms(st.P50), proxybench.Ms(st.P99), proxybench.Ms(st.Max))
	fmt.Printf("normal requests meanwhile: %d ok, %d failed\n", normalOK.Load(), normalFail.Load())
	ok := normalFail.Load() == 0 && closedInWindow.Load() == int64(o.idle)
	fmt.Printf("\ngoal: 0 failed normal requests and all %d idle connections closed after IdleTimeout: %s\n", o.idle, pass(ok))
	return nil
}
