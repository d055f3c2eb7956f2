// Command heapgen writes heap profiles shaped like those of large Go
// services, for `npm run bench`. Its allocating functions are generated
// (bench/generate.ts writes funcs.go: thousands of distinct functions that
// build maps of many shapes, grow slices, build strings and allocate
// buffers, each at its own lines); this file drives them.
//
//	heapgen -out DIR -funcs N -captures K [-rate R] [-interval D]
//
// Each round calls the first N functions once (a share of what they
// allocate is kept, so the heap grows from round to round), then writes
// DIR/heap-NNN.pb.gz after a GC.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"
)

// funcs is filled by the generated funcs.go.
var funcs []func(round int)

var (
	kept [][]any
	sink any
)

func keep(round int, v any) {
	for len(kept) <= round {
		kept = append(kept, nil)
	}
	kept[round] = append(kept[round], v)
}

func main() {
	out := flag.String("out", ".", "directory for heap-NNN.pb.gz")
	n := flag.Int("funcs", len(funcs), "how many of the generated functions to call")
	captures := flag.Int("captures", 1, "rounds, one profile after each")
	rate := flag.Int("rate", 1, "runtime.MemProfileRate")
	interval := flag.Duration("interval", time.Second, "pause between captures")
	flag.Parse()
	runtime.MemProfileRate = *rate
	if *n > len(funcs) {
		log.Fatalf("only %d functions were generated", len(funcs))
	}
	for round := 0; round < *captures; round++ {
		if round > 0 {
			time.Sleep(*interval)
		}
		for _, f := range funcs[:*n] {
			f(round)
		}
		runtime.GC()
		f, err := os.Create(filepath.Join(*out, fmt.Sprintf("heap-%03d.pb.gz", round+1)))
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
	runtime.KeepAlive(sink)
}
