// Command gated serves net/http/pprof, except that while its gate is closed
// a heap profile request waits until the test opens it: a capture held in
// the middle of a round, for tests of what happens meanwhile.
//
//	POST /gate/close          requests for /debug/pprof/heap wait from now on
//	POST /gate/open?answer=A  releases them: A=profile (the real answer) or A=error (HTTP 500)
//	GET  /gate/waiting        how many heap requests wait now
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

type gate struct {
	mu      sync.Mutex
	closed  bool
	opened  chan struct{}
	answer  string
	waiting int
}

// wait blocks while the gate is closed and says how to answer.
func (g *gate) wait() string {
	g.mu.Lock()
	if !g.closed {
		answer := g.answer
		g.mu.Unlock()
		return answer
	}
	opened := g.opened
	g.waiting++
	g.mu.Unlock()
	<-opened
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting--
	return g.answer
}

var retained = map[int][]byte{}

func main() {
	addr := flag.String("addr", ":6060", "listen address")
	closed := flag.Bool("closed", false, "start with the gate closed")
	flag.Parse()
	// Some heap to profile: a map that stays.
	for i := 0; i < 4096; i++ {
		retained[i] = make([]byte, 1024)
	}
	g := &gate{closed: *closed, opened: make(chan struct{}), answer: "profile"}
	// A mux of its own: DefaultServeMux holds net/http/pprof's "GET /debug/pprof/", which a plain /debug/pprof/heap conflicts with.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	heap := pprof.Handler("heap")
	mux.HandleFunc("/debug/pprof/heap", func(w http.ResponseWriter, r *http.Request) {
		if g.wait() == "error" {
			http.Error(w, "gated: answering with an error", http.StatusInternalServerError)
			return
		}
		heap.ServeHTTP(w, r)
	})
	mux.HandleFunc("/gate/close", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		if !g.closed {
			g.closed = true
			g.opened = make(chan struct{})
		}
		g.mu.Unlock()
		fmt.Fprintln(w, "closed")
	})
	mux.HandleFunc("/gate/open", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.answer = r.URL.Query().Get("answer")
		if g.answer == "" {
			g.answer = "profile"
		}
		if g.closed {
			g.closed = false
			close(g.opened)
		}
		g.mu.Unlock()
		fmt.Fprintln(w, "open")
	})
	mux.HandleFunc("/gate/waiting", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		fmt.Fprintln(w, g.waiting)
	})
	go func() {
		for range time.Tick(time.Second) {
			retained[len(retained)%8192] = make([]byte, 1024)
		}
	}()
	log.Printf("gated: serving on %s (gate closed: %v)", *addr, *closed)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
