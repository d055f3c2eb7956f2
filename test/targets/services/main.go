// Command services is a small "real service" for MapLeakProbe's verdict
// tests: its maps live in widely used third-party packages (a Prometheus
// registry, a TTL cache, an LRU cache, per-client rate limiters) or in its own
// code (static tables, drained maps, decoded JSON), beside a growing
// bytes.Buffer as the non-map control. Each marked line (`// SITE name`) is
// the first frame in this module that feeds one of them; the tests read this
// file to find them, so keep each marker on its line.
//
// Everything that is bounded is filled before the server listens, as a
// service warms its caches; what grows keeps growing at a steady rate, and a
// steady stream of short-lived garbage (decoded requests) keeps the GC
// cycling, as traffic does.
//
// It builds with Debian's Go 1.19 (classic maps) and Go 1.26 (swiss maps);
// the library versions are the last whose go.mod files Go 1.19 can read.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	gocache "github.com/patrickmn/go-cache"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

type route struct {
	pattern string
	handler int
	methods [4]uint16
	hits    int64
}

// buildRoutes is a route registry built once at start and read on every
// request: its elements (the *route values) stay alive.
func buildRoutes(n int) map[string]*route {
	m := make(map[string]*route)
	for i := 0; i < n; i++ {
		r := &route{pattern: "/api/v1/things/" + strconv.Itoa(i), handler: i}
		m[r.pattern] = r // SITE map-static-routes
	}
	return m
}

// buildAndDrainRoutes builds a map of the same shape, then deletes every
// key: the *route values are freed, the map's buckets or tables stay.
func buildAndDrainRoutes(n int) map[string]*route {
	m := make(map[string]*route)
	for i := 0; i < n; i++ {
		r := &route{pattern: "/old/v0/things/" + strconv.Itoa(i), handler: i}
		m[r.pattern] = r // SITE map-drained-routes
	}
	for k := range m {
		delete(m, k)
	}
	return m
}

type vector [64]byte

// buildInlineTable keeps keys and values inline (no pointers): a heap
// profile cannot tell this full table from a drained one.
func buildInlineTable(n int) map[int64]vector {
	m := make(map[int64]vector)
	for i := 0; i < n; i++ {
		m[int64(i)] = vector{byte(i)} // SITE map-inline-static
	}
	return m
}

func buildAndDrainInlineTable(n int) map[int64]vector {
	m := make(map[int64]vector)
	for i := 0; i < n; i++ {
		m[int64(i)] = vector{byte(i)} // SITE map-inline-drained
	}
	for k := range m {
		delete(m, k)
	}
	return m
}

type session struct {
	user    int64
	created int64
	roles   []string
}

type entry struct {
	key   string
	body  [48]byte
	stamp int64
}

type app struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec

	ttl *gocache.Cache
	lru *lru.Cache[string, *entry]

	limitersMu sync.Mutex
	limiters   map[string]*rate.Limiter

	routes       map[string]*route
	inlineStatic map[int64]vector

	journal []*bytes.Buffer

	nextClient int64
	rng        *rand.Rand
}

// countRequest labels a counter with the client id: unbounded label values,
// so the registry's metric map grows without bound.
func (a *app) countRequest(client int64) {
	a.requests.WithLabelValues("client-" + strconv.FormatInt(client, 10)).Inc() // SITE map-growing-labels
}

// scrape gathers the registry as a Prometheus scrape does: maps built and
// dropped every time.
func (a *app) scrape() int {
	families, err := a.registry.Gather() // SITE map-churn-scrape
	if err != nil {
		log.Fatal(err)
	}
	return len(families)
}

// remember stores a session in the TTL cache; the janitor deletes it once
// it has expired.
func (a *app) remember(id int64, ttl time.Duration) {
	s := &session{user: id, created: time.Now().UnixNano(), roles: []string{"reader"}}
	a.ttl.Set("session-"+strconv.FormatInt(id, 10), s, ttl) // SITE map-drained-ttl
}

// lookup is a read-through LRU at capacity: every miss inserts and evicts.
func (a *app) lookup(key int) *entry {
	k := "item-" + strconv.Itoa(key)
	if e, ok := a.lru.Get(k); ok {
		return e
	}
	e := &entry{key: k, stamp: time.Now().UnixNano()}
	a.lru.Add(k, e) // SITE map-bounded-lru
	return e
}

// limiterFor keeps one rate limiter per client address and never forgets a
// client.
func (a *app) limiterFor(client int64) *rate.Limiter {
	addr := "10." + strconv.FormatInt(client>>16, 10) + "." + strconv.FormatInt(client&0xffff, 10)
	a.limitersMu.Lock()
	defer a.limitersMu.Unlock()
	l, ok := a.limiters[addr]
	if !ok {
		l = rate.NewLimiter(rate.Limit(10), 20)
		a.limiters[addr] = l // SITE map-growing-limiters
	}
	return l
}

// decodeRequest decodes a JSON document and drops it, as a handler does.
func decodeRequest(body []byte) int {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil { // SITE map-churn-json
		log.Fatal(err)
	}
	return len(doc)
}

// record appends to a journal shard through three Write calls of about the
// same size: a buffer grows through whichever of them finds it full, so its
// memory moves from line to line as it doubles; only the function grows
// steadily.
func (a *app) record(shard int, id int64) {
	b := a.journal[shard]
	b.WriteString("event=request level=")                                      // SITE other-growing-journal
	b.Write(strconv.AppendInt(make([]byte, 0, 24), time.Now().UnixNano(), 10)) // SITE other-growing-journal-2
	fmt.Fprintf(b, " id=%012d\n", id)                                          // SITE other-growing-journal-3
}

func requestBody(rng *rand.Rand, n int) []byte {
	doc := make(map[string]int, n)
	for i := 0; i < n; i++ {
		doc["field-"+strconv.Itoa(rng.Intn(1<<20))] = i
	}
	raw, _ := json.Marshal(doc)
	return raw
}

var (
	drainedRoutes map[string]*route
	drainedInline map[int64]vector
	sink          int
)

func main() {
	addr := flag.String("addr", ":6060", "listen address for net/http/pprof")
	lifetime := flag.Duration("max-lifetime", 10*time.Minute, "exit after this long (a safety net for tests)")
	memProfileRate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: the runtime's default, 512 KiB)")
	flag.Parse()
	if *memProfileRate > 0 {
		runtime.MemProfileRate = *memProfileRate
	}

	a := &app{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "Requests per client."}, []string{"client"}),
		ttl:      gocache.New(time.Second, 500*time.Millisecond),
		limiters: make(map[string]*rate.Limiter),
		rng:      rand.New(rand.NewSource(1)),
	}
	a.registry.MustRegister(a.requests)
	var err error
	if a.lru, err = lru.New[string, *entry](120_000); err != nil {
		log.Fatal(err)
	}

	// Warm-up, before serving: static tables, a drained map of each shape,
	// a burst of sessions that expire a second later, and a full LRU.
	a.routes = buildRoutes(100_000)
	drainedRoutes = buildAndDrainRoutes(100_000)
	a.inlineStatic = buildInlineTable(60_000)
	drainedInline = buildAndDrainInlineTable(60_000)
	for i := int64(0); i < 200_000; i++ {
		a.remember(-i-1, time.Second)
	}
	for i := 0; i < 120_000; i++ {
		a.lookup(i)
	}
	for i := 0; i < 4; i++ {
		// Capacities a quarter of a doubling apart, so that the shards
		// double at evenly spread moments.
		a.journal = append(a.journal, bytes.NewBuffer(make([]byte, 0, int(float64(1<<20)*math.Pow(2, float64(i)/4)))))
	}
	bodies := make([][]byte, 16)
	for i := range bodies {
		bodies[i] = requestBody(a.rng, 400)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	go func() { log.Fatal(http.Serve(ln, nil)) }()
	time.AfterFunc(*lifetime, func() { os.Exit(0) })

	tick := time.NewTicker(100 * time.Millisecond)
	for n := 0; ; n++ {
		// Per tick (10 a second): 100 new clients in the metrics and the
		// limiters, 2,000 LRU lookups over 1M keys, a few sessions with a
		// one-second TTL, 40 decoded requests, journal lines.
		for i := 0; i < 100; i++ {
			a.nextClient++
			a.countRequest(a.nextClient)
			a.limiterFor(a.nextClient).Allow()
		}
		for i := 0; i < 2_000; i++ {
			sink += int(a.lookup(a.rng.Intn(1_000_000)).stamp & 1)
		}
		for i := 0; i < 20; i++ {
			a.remember(int64(n*20+i), time.Second)
		}
		for i := 0; i < 40; i++ {
			sink += decodeRequest(bodies[(n+i)%len(bodies)])
		}
		for i := 0; i < 400; i++ {
			a.record(i%len(a.journal), int64(n*400+i))
		}
		for i := 0; i < 50; i++ {
			r := a.routes["/api/v1/things/"+strconv.Itoa(a.rng.Intn(100_000))]
			r.hits++
			sink += int(a.inlineStatic[int64(a.rng.Intn(60_000))][0])
		}
		if n%30 == 0 {
			sink += a.scrape()
		}
		<-tick.C
	}
}
