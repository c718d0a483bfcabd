// Package proxy is Slipway's router: an HTTP reverse proxy that maps host
// names to the active instances ("targets") of a service and switches a
// service to new instances without dropping a request.
//
// A deploy builds the new target set, proves it healthy with a health gate,
// swaps one pointer under the router lock, and drains the old set with a
// deadline after releasing the lock (see Router.Deploy). Requests are
// routed without locks. Among several targets, a request goes to the one
// with the fewest requests in flight (ties rotate round robin). The router's
// services, hosts and active targets are saved in a versioned JSON file on
// every change and restored by NewRouter.
//
//	r, err := proxy.NewRouter("/var/lib/slipway/router.json")
//	...
//	go proxy.NewServer("127.0.0.1:8080", r).ListenAndServe()
//	res, err := r.Deploy(ctx, proxy.DeployRequest{
//		Service: "us/storefront",
//		Hosts:   []string{proxy.LocalHost("us"), "shop.example.com"},
//		Targets: []string{"127.0.0.1:41001"},
//		Health:  proxy.HealthCheck{Path: "/healthz"},
//	})
//	// err == nil: the new instance serves; res.Old may be stopped.
package proxy
