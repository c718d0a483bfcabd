// Command swarm benchmarks Slipway beyond one host, side by side with the
// peer in one run:
//
//   - cutover on Docker Swarm: N redeploys of a store on the swarm driver
//     (new service, gate through its host-mode port, router swap, drain,
//     old service removed) under an open-loop load of R req/s with a share
//     of 2-second requests, against the same load on Swarm's native
//     `docker service update --update-order start-first` with a health
//     check; it prints failed requests and answers from the old release
//     after each deploy returned, for both;
//
//   - fleet: `slipway deploy --all --deploy-only --wave W` of S stores on
//     the process runtime against one store's deploy, with serve's RSS.
//
//     go run ./bench/swarm                  # both, briefly
//     go run ./bench/swarm -mode fleet -stores 30 -wave 10
//     go run ./bench/swarm -mode swarm -deploys 10 -rate 300
//
// The swarm part needs a Docker engine, docker-registry and a static
// busybox (scripts/ci/setup.sh); it makes the engine a single-node swarm
// when it is not one, and leaves it again at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

type options struct {
	mode      string
	stores    int
	wave      int
	fleetRuns int
	deploys   int
	rate      int
	slowPct   int
	slow      time.Duration
	verbose   bool
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "all", "all, swarm or fleet")
	flag.IntVar(&o.stores, "stores", 30, "fleet: stores")
	flag.IntVar(&o.wave, "wave", 10, "fleet: stores per wave")
	flag.IntVar(&o.fleetRuns, "fleet-runs", 3, "fleet: timed runs")
	flag.IntVar(&o.deploys, "deploys", 10, "swarm: redeploys per system")
	flag.IntVar(&o.rate, "rate", 300, "swarm: requests per second")
	flag.IntVar(&o.slowPct, "slow-percent", 5, "swarm: percentage of slow requests")
	flag.DurationVar(&o.slow, "slow", 2*time.Second, "swarm: duration of a slow request")
	flag.BoolVar(&o.verbose, "v", false, "print the CLI's output")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if o.mode == "all" || o.mode == "swarm" {
		err = swarmBench(ctx, o)
	}
	if err == nil && (o.mode == "all" || o.mode == "fleet") {
		err = fleetBench(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/swarm:", err)
		os.Exit(1)
	}
}
