// Command leaky serves net/http/pprof and exhibits every memory pattern that
// MapLeakProbe classifies, each at a known site. Lines that the tests look up
// carry a `// SITE` marker (SITE, a space, a name); the tests read this file to find them, so
// keep each marker on the allocating line.
//
// It builds with Debian's Go 1.19 (classic maps) and Go 1.26 (swiss maps).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

type session struct {
	id      string
	user    int64
	created int64
	scores  [4]int64
}

// sessionStore never evicts: string keys, pointer values, unbounded growth.
type sessionStore struct {
	mu   sync.Mutex
	byID map[string]*session
}

func (s *sessionStore) put(id string, user int64) {
	sess := &session{id: id, user: user, created: time.Now().UnixNano()} // SITE other-growing-session-values
	s.mu.Lock()
	s.byID[id] = sess // SITE map-growing-sessions
	s.mu.Unlock()
}

// catalog merges JSON batches into one map[string]any: a map filled by
// json.Unmarshal (through reflect) that grows without bound.
type catalog struct {
	entries map[string]any
}

func (c *catalog) ingest(batch []byte) {
	if err := json.Unmarshal(batch, &c.entries); err != nil { // SITE map-growing-json
		log.Fatal(err)
	}
}

type blob [160]byte

// fillAndDrainBlobs fills a map with int keys and values over 128 bytes
// (stored out of line), then deletes every key: the buckets or tables stay.
func fillAndDrainBlobs(n int) map[int64]blob {
	m := make(map[int64]blob)
	for i := 0; i < n; i++ {
		m[int64(i)] = blob{byte(i)} // SITE map-retained-blobs
	}
	for k := range m {
		delete(m, k)
	}
	return m
}

type point struct {
	x, y int32
	tag  uint16
}

type item struct {
	name  string
	count int64
}

// fillAndDrainItems uses struct keys and pointer values; the values are freed
// when drained, the map's memory is not.
func fillAndDrainItems(n int) map[point]*item {
	m := make(map[point]*item)
	for i := 0; i < n; i++ {
		it := &item{count: int64(i)}                      // SITE other-drained-items
		m[point{int32(i), int32(i >> 8), uint16(i)}] = it // SITE map-retained-items
	}
	for k := range m {
		delete(m, k)
	}
	return m
}

// churnHistogram builds a struct-keyed map per call and drops it.
func churnHistogram(n int, seed int) int {
	h := make(map[point]int)
	for i := 0; i < n; i++ {
		h[point{int32((i * 7) ^ seed), int32(i % 97), uint16(i)}]++ // SITE map-churn-histogram
	}
	return len(h)
}

type entry struct {
	key   int64
	value [6]int64
}

// boundedCache keeps a fixed set of int keys and keeps replacing their
// values: steady map memory in ongoing use.
type boundedCache struct {
	byKey    map[int64]*entry
	capacity int64
	next     int64
}

func (c *boundedCache) store() {
	key := c.next % c.capacity
	c.byKey[key] = &entry{key: c.next} // SITE map-stable-cache
	c.next++
}

func (c *boundedCache) refresh(k int) {
	for i := 0; i < k; i++ {
		c.store()
	}
}

// rawLeak is the control: growing memory that is not a map.
var rawLeak [][]byte

func leakBuffers() {
	rawLeak = append(rawLeak, make([]byte, 48<<10)) // SITE other-growing-buffers
}

// pprofMux is nil (DefaultServeMux, where importing net/http/pprof
// registers /debug/pprof/) or, as many services do, a mux of the service's
// own with the handlers mounted under another prefix.
func pprofMux(prefix string) http.Handler {
	if prefix == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle(prefix+"heap", pprof.Handler("heap"))
	mux.Handle(prefix+"allocs", pprof.Handler("allocs"))
	mux.HandleFunc(prefix+"symbol", pprof.Symbol)
	mux.HandleFunc(prefix+"cmdline", pprof.Cmdline)
	return mux
}

// requireCredentials guards pprof the way protected services do: a bearer
// token or basic auth, else 401.
func requireCredentials(next http.Handler, bearer, basic string) http.Handler {
	if next == nil {
		next = http.DefaultServeMux
	}
	if bearer == "" && basic == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, hasBasic := r.BasicAuth()
		ok := (bearer != "" && r.Header.Get("Authorization") == "Bearer "+bearer) ||
			(basic != "" && hasBasic && user+":"+password == basic)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var (
	retainedBlobs map[int64]blob
	retainedItems map[point]*item
	keepAlive     []int
)

func main() {
	addr := flag.String("addr", ":6060", "listen address for net/http/pprof")
	lifetime := flag.Duration("max-lifetime", 10*time.Minute, "exit after this long (a safety net for tests)")
	sessionsPerTick := flag.Int("sessions-per-tick", 1500, "new sessions per 100ms tick")
	mode := flag.String("mode", "all", "all: every pattern; retained: drained maps, no growth; healthy: steady and churning maps only")
	memProfileRate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: the runtime's default, 512 KiB)")
	pprofPrefix := flag.String("pprof-prefix", "", "serve pprof on a mux of our own under this prefix (e.g. /internal/pprof/) instead of DefaultServeMux's /debug/pprof/")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM); needs -tls-key")
	tlsKey := flag.String("tls-key", "", "private key (PEM) of -tls-cert")
	bearer := flag.String("require-bearer", "", "answer 401 unless the request carries Authorization: Bearer <this>")
	basic := flag.String("require-basic", "", "answer 401 unless the request carries basic auth user:password equal to this")
	exitCode := flag.Int("exit-code", 0, "exit status at -max-lifetime (non-zero: a crash, for restart tests)")
	maxLeakHeap := flag.Uint64("max-leak-heap", 0, "stop leaking once heap objects reach this many bytes, keeping what leaked (0: never); the demo caps its leak with it")
	flag.Parse()
	if *memProfileRate > 0 {
		runtime.MemProfileRate = *memProfileRate
	}
	growing := *mode == "all"
	if *mode != "all" && *mode != "retained" && *mode != "healthy" {
		log.Fatalf("unknown -mode %q", *mode)
	}

	if *mode != "healthy" {
		retainedBlobs = fillAndDrainBlobs(400_000)
		retainedItems = fillAndDrainItems(300_000)
	}

	store := &sessionStore{byID: make(map[string]*session)}
	cat := &catalog{entries: make(map[string]any)}
	// Filled before serving, so a capture never sees the start-up fill as
	// growth. Large enough that a sampled heap profile always sees its tables well
	// above the 1 MiB reporting threshold (150k keys were ~3 MiB in Go 1.26).
	cache := &boundedCache{byKey: make(map[int64]*entry), capacity: 600_000}
	cache.refresh(600_000)
	// In-use figures are those of the last completed GC cycles. With a heap
	// this size the first cycles come seconds apart, so start-up would be
	// published in the middle of the first captures and read as growth;
	// this target's tests are about the steady state at each site (the
	// services target's tests are the ones about capture timing).
	runtime.GC()
	runtime.GC()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	handler := requireCredentials(pprofMux(*pprofPrefix), *bearer, *basic)
	go func() {
		if *tlsCert != "" {
			log.Fatal(http.ServeTLS(ln, handler, *tlsCert, *tlsKey))
		}
		log.Fatal(http.Serve(ln, handler))
	}()
	time.AfterFunc(*lifetime, func() { os.Exit(*exitCode) })

	var id int64
	heapObjects := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(100 * time.Millisecond)
	for n := 0; ; n++ {
		if growing && *maxLeakHeap > 0 && n%10 == 0 {
			metrics.Read(heapObjects)
			if heapObjects[0].Value.Uint64() >= *maxLeakHeap {
				growing = false
				log.Printf("heap objects reached %d bytes (-max-leak-heap %d): leaking stops, what leaked stays", heapObjects[0].Value.Uint64(), *maxLeakHeap)
			}
		}
		if growing {
			for i := 0; i < *sessionsPerTick; i++ {
				id++
				store.put("sess-"+strconv.FormatInt(id, 36), id)
			}
			batch := make(map[string]int, 2000)
			for i := 0; i < 2000; i++ {
				batch[fmt.Sprintf("sku-%d-%d", n, i)] = i
			}
			raw, _ := json.Marshal(batch)
			cat.ingest(raw)
			leakBuffers()
		}
		for i := 0; i < 4; i++ {
			keepAlive = append(keepAlive[:0], churnHistogram(20_000, n*4+i))
		}
		cache.refresh(2_000)
		<-tick.C
	}
}
