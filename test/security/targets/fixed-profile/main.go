// Command fixed-profile is a tenant's pprof endpoint that serves one
// crafted heap profile (a file the test wrote) on every capture: tens of
// thousands of sites with long names, each claiming a large size. It names
// no symbols and has no debug=1 text, so only the proto reaches the store.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", ":6060", "listen address")
	profile := flag.String("profile", "", "heap profile (gzipped proto) served at /debug/pprof/heap")
	flag.Parse()
	body, err := os.ReadFile(*profile)
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("debug") != "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
