// pprof-hello: the smoke test's pod program. It serves net/http/pprof on :6060,
// says hello, and keeps allocating (a map that grows and is replaced) so the
// garbage collector runs and GODEBUG=gctrace=1 prints "gc N @..." lines.
package main

import (
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

var retained map[int][]byte

func churn() {
	for round := 0; ; round++ {
		m := make(map[int][]byte, 1024)
		for i := 0; i < 4096; i++ {
			m[i] = make([]byte, 512)
		}
		retained = m
		if round%50 == 0 {
			fmt.Printf("pprof-hello: round %d, %d entries retained\n", round, len(retained))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func main() {
	host, _ := os.Hostname()
	fmt.Printf("pprof-hello: hello from %s, pprof on :6060\n", host)
	go churn()
	log.Fatal(http.ListenAndServe(":6060", nil))
}
