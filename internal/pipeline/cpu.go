package pipeline

import "runtime"

func runtimeCPUs() int { return runtime.NumCPU() }
