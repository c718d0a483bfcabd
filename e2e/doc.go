// Package e2e holds end-to-end tests that build the real slipway binary and
// drive it as a user would, on copies of examples/multistore: slipway up,
// slipway serve killed with SIGKILL mid-deploy and recovered, and secrets that
// must reach the app and nothing else. They need git and Node.js and run
// behind the build tag "integration":
//
//	go test -tags integration ./e2e
package e2e
