// Command badpprof answers /debug/pprof/* the wrong way on purpose, so tests
// can check that one broken target never stops the others.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", ":6060", "listen address")
	mode := flag.String("mode", "garbage", "garbage | huge | slow | html404")
	flag.Parse()

	http.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		switch *mode {
		case "garbage":
			junk := make([]byte, 64<<10)
			rand.Read(junk)
			w.Write(junk)
		case "huge":
			// 256 MiB of zeros: far past any sane profile limit.
			chunk := make([]byte, 1<<20)
			for i := 0; i < 256; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Minute):
			}
		case "html404":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>nothing here</body></html>")
		default:
			http.Error(w, "unknown mode", http.StatusInternalServerError)
		}
	})
	log.Printf("badpprof %s listening on %s", *mode, *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
