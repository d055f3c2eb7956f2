// Command ramp serves net/http/pprof and moves its live heap on command, for
// the memory-trigger tests: a map whose values grow at a set pace until a
// ceiling (a leak crossing a threshold), or a map filled and dropped over and
// over (a heap flapping around a threshold). Background garbage paces the GC
// so that a gctrace line is written about every -gc-every.
//
// The map starts moving when POST /ramp/start arrives (or at once with
// -start-now), so a test can first make sure it is being watched.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

const valueBytes = 1 << 10

type value [valueBytes]byte

var (
	mu      sync.Mutex
	held    = map[int64]*value{} // SITE map-ramp-held
	flapped map[int64]*value
	next    int64
	garbage [][]byte
)

func addTo(m map[int64]*value, n int) {
	for i := 0; i < n; i++ {
		m[next] = &value{byte(next)} // SITE map-ramp-values
		next++
	}
}

func liveHeap() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

func main() {
	addr := flag.String("addr", ":6060", "listen address for net/http/pprof")
	lifetime := flag.Duration("max-lifetime", 10*time.Minute, "exit after this long (a safety net for tests)")
	baseMB := flag.Int("base-mb", 4, "MiB of map values held from the start")
	growMBps := flag.Float64("grow-mb-per-sec", 4, "MiB of map values added per second once started")
	untilMB := flag.Int("until-mb", 64, "stop growing once the held map's values reach this many MiB (they stay held)")
	flapMB := flag.Int("flap-mb", 0, "instead of growing for good: fill a second map to this many MiB at -grow-mb-per-sec, drop it, and start over")
	gcEvery := flag.Duration("gc-every", time.Second, "allocate garbage so that a GC cycle (a gctrace line) comes about this often")
	startNow := flag.Bool("start-now", false, "start moving at once instead of on POST /ramp/start")
	flag.Parse()

	addTo(held, *baseMB<<20/valueBytes)
	var started atomic.Bool
	started.Store(*startNow)
	http.HandleFunc("POST /ramp/start", func(w http.ResponseWriter, _ *http.Request) {
		started.Store(true)
		fmt.Fprintln(w, "started")
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	go func() { log.Fatal(http.Serve(ln, nil)) }()
	go func() {
		time.Sleep(*lifetime)
		os.Exit(0)
	}()

	const tick = 10 * time.Millisecond
	perTick := int(*growMBps * float64(1<<20) / valueBytes * tick.Seconds())
	if perTick < 1 {
		perTick = 1
	}
	ticks := int(*gcEvery / tick)
	if ticks < 1 {
		ticks = 1
	}
	for range time.Tick(tick) {
		mu.Lock()
		if started.Load() {
			if *flapMB > 0 {
				if flapped == nil || len(flapped)*valueBytes >= *flapMB<<20 {
					flapped = map[int64]*value{} // SITE map-ramp-flap
				}
				addTo(flapped, perTick)
			} else if len(held)*valueBytes < *untilMB<<20 {
				addTo(held, perTick)
			}
		}
		mu.Unlock()
		// The GC starts when the heap has grown by the live heap again (GOGC=100):
		// spread that much garbage over -gc-every.
		chunk := int(liveHeap()) / ticks
		garbage = append(garbage[:0], make([]byte, chunk))
	}
}
