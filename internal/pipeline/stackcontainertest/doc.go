// Package stackcontainertest tests detected stacks built in containers on
// a real Docker engine; its own package, so the pipeline suite does not run twice.
package stackcontainertest
