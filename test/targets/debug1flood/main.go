// Command debug1flood is a tenant's pprof endpoint whose debug=1 is -mib MiB
// of one-PC records without `#` lines (23 bytes each: "1: 1 [1: 1] @ 0x500000"),
// the shape that parses into the most per byte of text (review 4, finding G).
// Its proto is the real one of this process, which holds -retain-mib in
// records debug=1 never teaches, so the operator wants debug=1 on its first
// capture; /symbol is net/http/pprof's own. GET /stats answers how many
// debug=1 reads were written whole (a reader that stops early cuts one short).
//
// With -replay, debug=1 is instead this process's own debug=1 records (their
// PCs and `#` lines as runtime/pprof printed them), repeated up to -mib MiB,
// each copy with an object size of its own: the shape of a large service's
// answer (~500 bytes of text per record, parsing into less than its text),
// in which every record teaches a hidden-frame entry of its own once
// /symbol names its runtime PCs.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"sync/atomic"
	"time"
)

// ownRecords is this process's debug=1, cut into its records: each one's
// PC list (" 0x... 0x...") and the `#` lines that follow it.
func ownRecords() (pcs []string, frames []string) {
	var buf bytes.Buffer
	if err := rpprof.Lookup("heap").WriteTo(&buf, 1); err != nil {
		log.Fatal(err)
	}
	for _, block := range strings.Split(buf.String(), "\n\n") {
		lines := strings.SplitN(block, "\n", 2)
		at := strings.Index(lines[0], "] @")
		// Only retain's record: the runtime's own sampled records (a chance of the sampling) would make the answer vary.
		if at < 0 || strings.HasPrefix(lines[0], "heap profile:") || !strings.Contains(block, "main.retainBuffers") {
			continue
		}
		rest := ""
		if len(lines) == 2 {
			rest = lines[1] + "\n"
		}
		pcs = append(pcs, lines[0][at+3:])
		frames = append(frames, rest)
	}
	if len(pcs) == 0 {
		log.Fatal("no records in this process's own debug=1")
	}
	return pcs, frames
}

var retained [][]byte

// retain holds the heap a few calls deep, as a service's allocations are:
// with -replay each record then prints six `#` lines, so its text is longer
// than its parse however short the build's file paths.
//
//go:noinline
func retain(mib int) { retainForHandler(mib) }

//go:noinline
func retainForHandler(mib int) { retainInCache(mib) }

//go:noinline
func retainInCache(mib int) { retainBuffers(mib) }

//go:noinline
func retainBuffers(mib int) {
	for i := 0; i < mib*4; i++ {
		retained = append(retained, make([]byte, 256<<10))
	}
}

func main() {
	addr := flag.String("addr", ":6060", "listen address")
	lifetime := flag.Duration("max-lifetime", 10*time.Minute, "exit after this long (a safety net for tests)")
	retainMiB := flag.Int("retain-mib", 4, "heap held in records debug=1 never teaches")
	mib := flag.Int("mib", 30, "MiB of one-PC records debug=1 serves")
	replay := flag.Bool("replay", false, "serve this process's own records, repeated with object sizes of their own, instead of one-PC records")
	flag.Parse()
	time.AfterFunc(*lifetime, func() { os.Exit(0) })
	retain(*retainMiB)
	var ownPcs, ownFrames []string
	if *replay {
		// The heap profile shows allocations as of the last completed GC cycle: without one since retain, a loaded
		// machine can start this process with retain's records not yet published, and nothing to replay.
		runtime.GC()
		ownPcs, ownFrames = ownRecords()
	}

	var debug1Reads, debug1Whole atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("debug") == "" {
			pprof.Handler("heap").ServeHTTP(w, r)
			return
		}
		debug1Reads.Add(1)
		bw := bufio.NewWriterSize(w, 64<<10)
		fmt.Fprintf(bw, "heap profile: 1: 1 [1: 1] @ heap/1048576\n")
		for i, written := 0, 0; written < *mib<<20; i++ {
			var n int
			var err error
			if *replay {
				// One object of 8*(i+1) bytes: a size, and so a record key, of its own.
				r := i % len(ownPcs)
				n, err = fmt.Fprintf(bw, "1: %d [1: %d] @%s\n%s\n", 8*(i+1), 8*(i+1), ownPcs[r], ownFrames[r])
			} else {
				n, err = fmt.Fprintf(bw, "1: 1 [1: 1] @ 0x%x\n", 0x500000+i)
			}
			if err != nil {
				return
			}
			written += n
		}
		if bw.Flush() == nil {
			debug1Whole.Add(1)
		}
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "{\"debug1Reads\": %d, \"debug1Whole\": %d}\n", debug1Reads.Load(), debug1Whole.Load())
	})
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
