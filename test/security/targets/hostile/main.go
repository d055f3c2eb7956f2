// Command hostile is a tenant's pprof endpoint that attacks the operator
// capturing it: bombs, planted secrets in error pages, answers that never
// end. test/security checks that each fails safely.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", ":6060", "listen address")
	mode := flag.String("mode", "bomb", "bomb | html-secret | json-secret | endless | slow")
	secret := flag.String("secret", "planted-secret", "text planted in error answers")
	flag.Parse()

	// 1 GiB of zeros gzips to about 1 MiB.
	var bomb bytes.Buffer
	if *mode == "bomb" {
		zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for i := 0; i < 1024; i++ {
			zw.Write(zeros)
		}
		zw.Close()
	}

	http.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		switch *mode {
		case "bomb":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(bomb.Bytes())
		case "html-secret":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>%s</title></head><body>token=%s</body></html>", *secret, *secret)
		case "json-secret":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"%s","reason":"Forbidden","code":403}`, *secret)
		case "endless":
			// A 200 that never ends: a byte every 50 ms.
			w.Header().Set("Content-Type", "application/octet-stream")
			for {
				if _, err := w.Write([]byte{0}); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Minute):
			}
		default:
			http.Error(w, "unknown mode", http.StatusInternalServerError)
		}
	})
	log.Printf("hostile %s listening on %s", *mode, *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
