//go:build !linux

package main

import (
	"context"
	"errors"
)

// runStack needs Linux: the clean-up finds the instances through /proc.
func runStack(context.Context, options, []report) error {
	return errors.New("-stack needs Linux")
}
