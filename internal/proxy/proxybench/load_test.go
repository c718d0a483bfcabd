package proxybench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

const wrkOutput = `Running 2s test @ http://127.0.0.1:40803/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.31ms    4.02ms  48.93ms   81.52%
    Req/Sec    12.45k     3.60k   19.03k    63.75%
  Latency Distribution
     50%  433.00us
     75%    6.20ms
     90%    9.61ms
     99%    1.02s
  24791 requests in 2.00s, 5.77MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  12324.85
Transfer/sec:      2.88MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{P50: 433 * time.Microsecond, P99: 1020 * time.Millisecond, RPS: 12324.85, Requests: 24791, Errors: 7}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestOpenLoopKeepsRateWhenCallsAreSlow(t *testing.T) {
	var calls atomic.Int64
	start := time.Now()
	n := OpenLoop(context.Background(), 200, 250*time.Millisecond, func(i int, intended time.Time) {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond) // slower than the interval: must not hold the next send
	})
	if n != 50 || calls.Load() != 50 {
		t.Errorf("sent %d, called %d, want 50", n, calls.Load())
	}
	if took := time.Since(start); took > 600*time.Millisecond {
		t.Errorf("took %s: slow calls held the schedule back", took)
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := Summarise(lat)
	if s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond || s.N != 100 {
		t.Errorf("%+v", s)
	}
}
