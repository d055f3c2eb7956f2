//go:build !go1.21

package main

func clearCounters() {
	for k := range counters {
		delete(counters, k)
	}
}
