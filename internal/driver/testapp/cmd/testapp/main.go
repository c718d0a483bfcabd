// Command testapp is the tiny web app the driver conformance suite runs
// (internal/driver/drivertest). It needs nothing from its image but itself,
// so it runs on scratch.
//
// Serving (no arguments): listens on $HOST:$PORT (HOST defaults to 0.0.0.0:
// in a container the runtime publishes the port on loopback; the process
// runtime sets HOST=127.0.0.1) and answers
//
//	/healthz          200 "ok"
//	/env?k=NAME       the variable's value, 404 when unset
//	/release          $SLIPWAY_RELEASE, else $TESTAPP_MARKER
//	/data             increments the counter file in the data dir, returns the new value
//	/file?name=F      the data dir file F, 404 when missing
//	/crash            answers, then exits with status 3
//	/slow?ms=N        answers after N milliseconds
//	/pid              its process id
//
// The data dir is $SLIPWAY_DATA_DIR, else /data. It prints a line to stdout
// at start and for every request, and one to stderr at start. On SIGTERM (or
// SIGINT) it finishes in-flight requests and exits 0, unless
// TESTAPP_IGNORE_TERM=1, in which case it ignores SIGTERM and must be killed.
//
// Hook commands (testapp CMD ARGS...):
//
//	exit N            prints a line to stdout and one to stderr, exits N
//	env NAME          prints $NAME
//	write F VALUE     writes VALUE to data dir file F
//	cat F             prints data dir file F
//	tick F            starts a child that writes an increasing counter to data
//	                  dir file F every 50 ms, prints "ready", then sleeps forever
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		os.Exit(hook(os.Args[1], os.Args[2:]))
	}
	os.Exit(serve())
}

func dataDir() string {
	if d := os.Getenv("SLIPWAY_DATA_DIR"); d != "" {
		return d
	}
	return "/data"
}

// dataFile maps a bare file name into the data dir; anything else is refused
// so a request cannot read outside it.
func dataFile(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("bad data file name %q", name)
	}
	return filepath.Join(dataDir(), name), nil
}

func hook(cmd string, args []string) int {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		fmt.Fprintf(os.Stderr, "testapp %s: missing argument %d\n", cmd, i+1)
		os.Exit(2)
		return ""
	}
	switch cmd {
	case "exit":
		n, err := strconv.Atoi(arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("testapp stdout line")
		fmt.Fprintln(os.Stderr, "testapp stderr line")
		return n
	case "env":
		fmt.Println(os.Getenv(arg(0)))
		return 0
	case "write":
		p, err := dataFile(arg(0))
		if err == nil {
			err = os.WriteFile(p, []byte(arg(1)), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "cat":
		p, err := dataFile(arg(0))
		var b []byte
		if err == nil {
			b, err = os.ReadFile(p)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Stdout.Write(b)
		return 0
	case "tick":
		self, err := os.Executable()
		if err != nil {
			self = os.Args[0]
		}
		child := exec.Command(self, "tick-child", arg(0))
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// Wait for the child's first tick, so that "ready" means it runs.
		p, _ := dataFile(arg(0))
		for i := 0; i < 200; i++ {
			if _, err := os.Stat(p); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("ready")
		for {
			time.Sleep(time.Hour) // until killed (a bare select{} would be a deadlock panic)
		}
	case "tick-child":
		p, err := dataFile(arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for i := 1; ; i++ {
			tmp := p + ".tmp"
			if err := os.WriteFile(tmp, []byte(strconv.Itoa(i)), 0o644); err == nil {
				os.Rename(tmp, p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	fmt.Fprintf(os.Stderr, "testapp: unknown command %q\n", cmd)
	return 2
}

func serve() int {
	host := os.Getenv("HOST")
	if host == "" {
		host = "0.0.0.0"
	}
	port := os.Getenv("PORT")
	if port == "" {
		fmt.Fprintln(os.Stderr, "testapp: PORT is not set")
		return 2
	}
	sigs := make(chan os.Signal, 1)
	if os.Getenv("TESTAPP_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		signal.Notify(sigs, os.Interrupt)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		return 1
	}
	var counterMu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("k"))
		if !ok {
			http.Error(w, "unset", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		v := os.Getenv("SLIPWAY_RELEASE")
		if v == "" {
			v = os.Getenv("TESTAPP_MARKER")
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("/data", func(w http.ResponseWriter, r *http.Request) {
		counterMu.Lock()
		defer counterMu.Unlock()
		p, _ := dataFile("counter")
		n := 0
		if b, err := os.ReadFile(p); err == nil {
			n, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		n++
		if err := os.WriteFile(p, []byte(strconv.Itoa(n)), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		p, err := dataFile(r.URL.Query().Get("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			http.Error(w, "no such file", http.StatusNotFound)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "crashing")
		w.(http.Flusher).Flush()
		go func() {
			time.Sleep(50 * time.Millisecond)
			fmt.Println("testapp crashing with status 3")
			os.Exit(3)
		}()
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprint(w, "slow done")
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getpid()) })

	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("testapp request %s %s\n", r.Method, r.URL.RequestURI())
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: logged, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("testapp listening on %s pid %d\n", ln.Addr(), os.Getpid())
	fmt.Fprintln(os.Stderr, "testapp stderr hello")

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintln(os.Stderr, "testapp:", err)
		return 1
	case sig := <-sigs:
		fmt.Printf("testapp got %s, draining\n", sig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "testapp: shutdown:", err)
		return 1
	}
	fmt.Println("testapp stopped")
	return 0
}
