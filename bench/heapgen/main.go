// Command heapgen writes a large, real heap profile for `npm run bench`:
// every allocation is sampled (MemProfileRate = 1) from 2^depth distinct
// call stacks, each with several object sizes, next to a few real maps.
package main

import (
	"flag"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
)

var (
	keep  [][]byte
	maps  []map[int64]*[4]int64
	sizes = []int{16, 48, 96, 176, 320, 640, 1152, 2304, 4096, 8192, 13568, 27264, 40960, 81920}
)

//go:noinline
func allocate(size int, retain bool) {
	b := make([]byte, size)
	if retain {
		keep = append(keep, b)
	}
}

// walk reaches the leaf through one of two call sites per level, so each
// path is a distinct stack.
//
//go:noinline
func walk(depth int, path uint32, size int, retain bool) {
	if depth == 0 {
		allocate(size, retain)
		return
	}
	if path&1 == 0 {
		walk(depth-1, path>>1, size, retain)
	} else {
		walk(depth-1, path>>1, size, retain)
	}
}

func main() {
	out := flag.String("out", "heap.pb.gz", "where to write the proto heap profile")
	depth := flag.Int("depth", 12, "2^depth distinct stacks")
	flag.Parse()
	runtime.MemProfileRate = 1

	for path := uint32(0); path < 1<<*depth; path++ {
		for i, size := range sizes {
			walk(*depth, path, size, (int(path)+i)%3 == 0)
		}
	}
	for i := 0; i < 16; i++ {
		m := make(map[int64]*[4]int64)
		for k := int64(0); k < 20_000; k++ {
			m[k] = &[4]int64{k}
		}
		maps = append(maps, m)
	}
	runtime.GC()
	runtime.GC()
	f, err := os.Create(*out)
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
