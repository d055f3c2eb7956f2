// Command debug1flood is a tenant's pprof endpoint whose debug=1 is -mib MiB
// of one-PC records without `#` lines (23 bytes each: "1: 1 [1: 1] @ 0x500000"),
// the shape that parses into the most per byte of text (review 4, finding G).
// Its proto is the real one of this process, which holds -retain-mib in
// records debug=1 never teaches, so the operator wants debug=1 on its first
// capture; /symbol is net/http/pprof's own. GET /stats answers how many
// debug=1 reads were written whole (a reader that stops early cuts one short).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"
)

var retained [][]byte

//go:noinline
func retain(mib int) {
	for i := 0; i < mib*4; i++ {
		retained = append(retained, make([]byte, 256<<10))
	}
}

func main() {
	addr := flag.String("addr", ":6060", "listen address")
	lifetime := flag.Duration("max-lifetime", 10*time.Minute, "exit after this long (a safety net for tests)")
	retainMiB := flag.Int("retain-mib", 4, "heap held in records debug=1 never teaches")
	mib := flag.Int("mib", 30, "MiB of one-PC records debug=1 serves")
	flag.Parse()
	time.AfterFunc(*lifetime, func() { os.Exit(0) })
	retain(*retainMiB)

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
			n, err := fmt.Fprintf(bw, "1: 1 [1: 1] @ 0x%x\n", 0x500000+i)
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
