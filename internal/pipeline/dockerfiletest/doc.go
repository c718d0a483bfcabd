// Package dockerfiletest holds the integration tests of Dockerfile builds
// through pipeline.Build, apart from the pipeline package so that its own
// (long) suite does not run twice in CI (go test -tags integration runs
// every package that has an integration-tagged file):
//
//	go test -tags integration ./internal/pipeline/dockerfiletest
package dockerfiletest
