// Command bigheap serves net/http/pprof for a heap with many distinct
// allocation records, the way a large service's heap profile looks: every
// allocation is sampled (MemProfileRate = 1) and reached through one of
// 8^depth call paths, so the heap profile has about -records records. A few
// maps of different shapes sit beside them, one of them growing.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"time"
)

var kept [][]byte

// Eight distinct functions: the path through them is the record's stack.
//
//go:noinline
func p0(code, depth int) { step(code, depth) }

//go:noinline
func p1(code, depth int) { step(code, depth) }

//go:noinline
func p2(code, depth int) { step(code, depth) }

//go:noinline
func p3(code, depth int) { step(code, depth) }

//go:noinline
func p4(code, depth int) { step(code, depth) }

//go:noinline
func p5(code, depth int) { step(code, depth) }

//go:noinline
func p6(code, depth int) { step(code, depth) }

//go:noinline
func p7(code, depth int) { step(code, depth) }

var paths [8]func(int, int)

func init() { paths = [8]func(int, int){p0, p1, p2, p3, p4, p5, p6, p7} }

//go:noinline
func step(code, depth int) {
	if depth == 0 {
		kept = append(kept, make([]byte, 48+code%4*16))
		return
	}
	paths[code%8](code/8, depth-1)
}

type user struct {
	id   int64
	name string
}

func main() {
	addr := flag.String("addr", ":6060", "listen address for net/http/pprof")
	lifetime := flag.Duration("max-lifetime", 10*time.Minute, "exit after this long (a safety net for tests)")
	records := flag.Int("records", 85_000, "distinct allocation stacks to make")
	flag.Parse()
	runtime.MemProfileRate = 1

	depth := 1
	for n := 8; n < *records; n *= 8 {
		depth++
	}
	for code := 0; code < *records; code++ {
		paths[code%8](code/8, depth-1)
	}
	static := make(map[int64]*user, 200_000)
	for i := int64(0); i < 200_000; i++ {
		static[i] = &user{id: i, name: "u" + strconv.FormatInt(i, 10)}
	}
	growing := make(map[string]int64)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	go func() { log.Fatal(http.Serve(ln, nil)) }()
	time.AfterFunc(*lifetime, func() { os.Exit(0) })
	var n int64
	for range time.Tick(100 * time.Millisecond) {
		for i := 0; i < 2000; i++ {
			n++
			growing["k"+strconv.FormatInt(n, 36)] = n
		}
		_ = static[n%200_000]
	}
}
