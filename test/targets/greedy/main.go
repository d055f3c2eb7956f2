// Command greedy is a tenant's pprof endpoint that tries to exhaust the
// operator capturing it of memory and time (review 3, findings 2-4). Its
// /debug/pprof/heap proto is the real one of this process, which holds
// -retain-mib in records that debug=1 never teaches, so every capture
// wants debug=1 again; debug=1 and /symbol are the attack:
//
//   - -debug1-pcs N: debug=1 lists N unnamed PCs (new ones on every read
//     with -fresh), so the operator asks /symbol for all of them;
//   - -debug1-mib M: debug=1 is M MiB of well-formed records instead;
//   - -sym-name L: /symbol names each asked PC with an L-byte name, and
//     -sym-extra K more PCs nobody asked for;
//   - -sym-delay D: each /symbol answer waits D first; -sym-none answers
//     "num_symbols: 1" and names nothing; -debug1-delay D: debug=1 waits D.
//
// GET /stats answers the counts of debug=1 reads and /symbol requests.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
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
	retainMiB := flag.Int("retain-mib", 16, "heap held in records debug=1 never teaches")
	pcs := flag.Int("debug1-pcs", 0, "unnamed PCs listed by debug=1 (0: the runtime's own debug=1)")
	fresh := flag.Bool("fresh", false, "new PCs on every debug=1 read (they are never learned)")
	debug1MiB := flag.Int("debug1-mib", 0, "serve a debug=1 of this many MiB of well-formed records")
	symName := flag.Int("sym-name", 24, "bytes of each symbol name answered")
	symExtra := flag.Int("sym-extra", 0, "PCs named in each /symbol answer that were not asked for")
	symDelay := flag.Duration("sym-delay", 0, "wait before each /symbol answer")
	symNone := flag.Bool("sym-none", false, `answer "num_symbols: 1" and name no PC`)
	debug1Delay := flag.Duration("debug1-delay", 0, "wait before each debug=1 answer")
	flag.Parse()
	time.AfterFunc(*lifetime, func() { os.Exit(0) })
	retain(*retainMiB)

	var debug1Reads, symbolRequests atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("debug") == "" {
			pprof.Lookup("heap").WriteTo(w, 0)
			return
		}
		read := debug1Reads.Add(1)
		time.Sleep(*debug1Delay)
		bw := bufio.NewWriterSize(w, 64<<10)
		defer bw.Flush()
		switch {
		case *debug1MiB > 0:
			fmt.Fprintf(bw, "heap profile: 1: 8192 [1: 8192] @ heap/524288\n")
			written := 0
			for i := 0; written < *debug1MiB<<20; i++ {
				n, _ := fmt.Fprintf(bw, "1: 8192 [1: 8192] @ 0x%x 0x%x 0x%x\n#\t0x%x\tmain.f%d+0x1\t/src/main.go:%d\n", 0x400000+i*16+1, 0x500001, 0x600001, 0x400000+i*16, i, i%1000)
				written += n
			}
		case *pcs > 0:
			base := int64(0x400000)
			if *fresh {
				base += read << 28
			}
			fmt.Fprintf(bw, "heap profile: %d: %d [%d: %d] @ heap/524288\n", *pcs/8, *pcs*1024, *pcs/8, *pcs*1024)
			for i := 0; i < *pcs; i += 8 {
				bw.WriteString("1: 8192 [1: 8192] @")
				for j := 0; j < 8; j++ {
					fmt.Fprintf(bw, " 0x%x", base+int64((i+j)*16+1))
				}
				bw.WriteString("\n")
			}
		default:
			pprof.Lookup("heap").WriteTo(bw, 1)
		}
	})
	mux.HandleFunc("/debug/pprof/symbol", func(w http.ResponseWriter, r *http.Request) {
		symbolRequests.Add(1)
		time.Sleep(*symDelay)
		bw := bufio.NewWriterSize(w, 64<<10)
		defer bw.Flush()
		bw.WriteString("num_symbols: 1\n")
		if *symNone {
			return
		}
		name := strings.Repeat("s", *symName)
		for i, pc := range strings.Split(r.URL.RawQuery, "+") {
			fmt.Fprintf(bw, "%s main.%s%d\n", pc, name, i)
		}
		for i := 0; i < *symExtra; i++ {
			fmt.Fprintf(bw, "0x%x main.%s%d\n", 0x7f0000000000+int64(i)*16, name, i)
		}
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "{\"debug1Reads\": %d, \"symbolRequests\": %d}\n", debug1Reads.Load(), symbolRequests.Load())
	})
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("greedy listening on %s\n", listener.Addr())
	runtime.GC()
	log.Fatal(http.Serve(listener, mux))
}
