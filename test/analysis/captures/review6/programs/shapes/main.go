// Command shapes: map shapes real services have. Ground truth in comments (S1..S6).
package main

import (
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof"
	"runtime"
	"strconv"
	"sync"
	"time"
)

type rec struct {
	id   int64
	name string
	tags [4]int64
}

var mu sync.Mutex

// S1 (retained): grew once to 400k entries at start-up, then 99% deleted;
// the working set (4,000 entries) is churned at a constant count.
var sessions map[int64]*rec

func bigThenDelete() {
	sessions = make(map[int64]*rec)
	for i := int64(0); i < 400000; i++ {
		sessions[i] = &rec{id: i, name: "s" + strconv.FormatInt(i, 10)}
	}
	for i := int64(4000); i < 400000; i++ {
		delete(sessions, i)
	}
}

func churnSessions(k int64) {
	delete(sessions, k%4000)
	sessions[k%4000] = &rec{id: k, name: "s" + strconv.FormatInt(k, 10)}
}

// S2 (stable/churn, bounded): a snapshot index rebuilt wholesale every 2 s.
var index map[string]*rec

func rebuildIndex(gen int) {
	m := make(map[string]*rec)
	for i := 0; i < 60000; i++ {
		m["k"+strconv.Itoa(i)] = &rec{id: int64(gen)}
	}
	mu.Lock()
	index = m
	mu.Unlock()
}

// S3 (growing): values larger than 128 bytes (stored out of line).
type blob [200]byte

var blobs = map[int]blob{}

func storeBlob(i int) { blobs[i] = blob{byte(i)} }

// S4 (growing): keys larger than 128 bytes (stored out of line).
type bigKey [160]byte

var bigKeys = map[bigKey]int32{}

func storeBigKey(i int) {
	var k bigKey
	copy(k[:], strconv.Itoa(i))
	bigKeys[k] = int32(i)
}

// S5 (map bounded, values leak): 1,000 keys, each value appended to forever.
var journals = map[int][]byte{}

func appendJournal(i int) {
	k := i % 1000
	journals[k] = append(journals[k], make([]byte, 64)...)
}

// S6 (stable): clear() then refill to a tenth of the high-water size, every 3 s.
var counters = map[uint64]uint64{}

func refillSmaller(round int) {
	n := 20000
	if round == 0 {
		n = 200000
	}
	clearCounters()
	for i := 0; i < n; i++ {
		counters[uint64(i)] = uint64(round)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6082", "")
	rate := flag.Int("memprofilerate", 0, "")
	flag.Parse()
	if *rate != 0 {
		runtime.MemProfileRate = *rate
	}
	bigThenDelete()
	refillSmaller(0)
	go func() { log.Fatal(http.ListenAndServe(*addr, nil)) }()
	go func() {
		for g := 0; ; g++ {
			rebuildIndex(g)
			if g%3 == 2 {
				refillSmaller(g)
			}
			time.Sleep(2 * time.Second)
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	i := 0
	for range tick.C {
		for k := 0; k < 40; k++ { // 4,000/s each
			churnSessions(int64(i))
			storeBlob(i)
			storeBigKey(i)
			appendJournal(i)
			i++
		}
	}
}
