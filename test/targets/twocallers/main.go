// Command twocallers: one library line fed by two callers, each the user's
// own map. Both go-cache caches insert through the same line of
// go-cache.(*cache).Set; what tells them apart is the user's line that calls
// it. Ground truth: main.remember's cache grows without bound (no
// expiration); main.session's cache is a TTL cache held at its bound (a
// steady stream of sessions, each expiring after -ttl), filled to that bound
// before the server listens. A stream of short-lived garbage keeps the GC
// cycling, as traffic does. After the reviewer's program (review 5, F8).
//
// The tests read the `// SITE name` markers to find the callers' lines:
// keep each marker on its line.
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

	gocache "github.com/patrickmn/go-cache"
)

var sink []byte

type rec struct {
	id    int64
	user  string
	stamp int64
}

func remember(c *gocache.Cache, id int) {
	c.Set("k"+strconv.Itoa(id), &rec{id: int64(id)}, gocache.NoExpiration) // SITE caller-remember
}

func session(c *gocache.Cache, id int) {
	c.Set("s"+strconv.Itoa(id), &rec{id: int64(id)}, gocache.DefaultExpiration) // SITE caller-session
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6066", "listen address for net/http/pprof")
	lifetime := flag.Duration("max-lifetime", 10*time.Minute, "exit after this long (a safety net for tests)")
	memProfileRate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: the runtime's default, 512 KiB)")
	leak := flag.Int("leak", 6000, "entries per second main.remember keeps forever")
	churn := flag.Int("churn", 20000, "sessions per second main.session adds, each expiring after -ttl")
	ttl := flag.Duration("ttl", 2*time.Second, "how long a session lives")
	flag.Parse()
	if *memProfileRate > 0 {
		runtime.MemProfileRate = *memProfileRate
	}

	leaky := gocache.New(gocache.NoExpiration, 0)
	sessions := gocache.New(*ttl, 250*time.Millisecond)
	const tick = 10 * time.Millisecond
	perTickLeak, perTickChurn := *leak/100, *churn/100
	n := 0
	step := func(withLeak bool) {
		for i := 0; i < perTickChurn; i++ {
			session(sessions, n*perTickChurn+i)
		}
		if withLeak {
			for i := 0; i < perTickLeak; i++ {
				remember(leaky, n*perTickLeak+i)
			}
		}
		n++
	}
	// The session cache reaches its bound (churn × ttl entries) before the
	// server listens, as a service warms its caches: twice the TTL, so the
	// first sessions have expired and been swept.
	for start := time.Now(); time.Since(start) < 2**ttl; {
		step(false)
		time.Sleep(tick)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	go func() { log.Fatal(http.Serve(ln, nil)) }()
	time.AfterFunc(*lifetime, func() { os.Exit(0) })
	go func() {
		for {
			sink = make([]byte, 64<<10)
			time.Sleep(time.Millisecond)
		}
	}()
	ticker := time.NewTicker(tick)
	for {
		step(true)
		<-ticker.C
	}
}
