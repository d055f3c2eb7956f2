// Command shapes builds Go maps of known shapes, keeps them alive, and
// reports what each really costs, so that the bytes mapleak attributes to
// each map can be checked against the truth.
//
// Every map is built in its own function (one line per map in the heap
// profile, marked "// SITE name"), with every allocation sampled
// (runtime.MemProfileRate = 1). Its cost is runtime.MemStats.HeapAlloc after
// building it minus before, each after runtime.GC().
//
//	shapes -out heap.pb.gz        write the proto heap profile, print the truth as JSON, exit
//	shapes -addr 127.0.0.1:0      print the truth, then serve net/http/pprof (and /truth) until killed
//	                              (or -max-lifetime has passed); test/support's startTarget runs it so
//
// The functions below follow one pattern per (key size, value size, entry
// count); keys and values are arrays of int64 (no pointers, 8-byte aligned).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

func init() { runtime.MemProfileRate = 1 }

// Shape is one map (or control allocation) and its measured cost.
type Shape struct {
	Site       string `json:"site"`
	Function   string `json:"function"`
	Kind       string `json:"kind"` // "map" or "other"
	KeyBytes   int    `json:"keyBytes"`
	ValueBytes int    `json:"valueBytes"`
	Entries    int    `json:"entries"`
	Bytes      int64  `json:"bytes"` // negative when the collector freed more than the map took (tiny maps)
}

// Truth is what the program prints on stdout (one JSON line) and serves on /truth.
type Truth struct {
	GoVersion string  `json:"goVersion"`
	Shapes    []Shape `json:"shapes"`
}

var (
	keep  []any
	truth Truth
)

func measure(site, function, kind string, keyBytes, valueBytes, entries int, build func() any) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	keep = append(keep, v)
	truth.Shapes = append(truth.Shapes, Shape{site, function, kind, keyBytes, valueBytes, entries, int64(after.HeapAlloc) - int64(before.HeapAlloc)})
}

//go:noinline
func build_v8_small() any {
	m := make(map[int64][1]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [1]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v8-small
	}
	return m
}

//go:noinline
func build_v8_mid() any {
	m := make(map[int64][1]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [1]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v8-mid
	}
	return m
}

//go:noinline
func build_v8_big() any {
	m := make(map[int64][1]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [1]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v8-big
	}
	return m
}

//go:noinline
func build_v16_small() any {
	m := make(map[int64][2]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [2]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v16-small
	}
	return m
}

//go:noinline
func build_v16_mid() any {
	m := make(map[int64][2]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [2]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v16-mid
	}
	return m
}

//go:noinline
func build_v16_big() any {
	m := make(map[int64][2]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [2]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v16-big
	}
	return m
}

//go:noinline
func build_v24_small() any {
	m := make(map[int64][3]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [3]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v24-small
	}
	return m
}

//go:noinline
func build_v24_mid() any {
	m := make(map[int64][3]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [3]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v24-mid
	}
	return m
}

//go:noinline
func build_v24_big() any {
	m := make(map[int64][3]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [3]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v24-big
	}
	return m
}

//go:noinline
func build_v64_small() any {
	m := make(map[int64][8]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [8]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v64-small
	}
	return m
}

//go:noinline
func build_v64_mid() any {
	m := make(map[int64][8]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [8]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v64-mid
	}
	return m
}

//go:noinline
func build_v64_big() any {
	m := make(map[int64][8]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [8]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v64-big
	}
	return m
}

//go:noinline
func build_v72_small() any {
	m := make(map[int64][9]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [9]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v72-small
	}
	return m
}

//go:noinline
func build_v72_mid() any {
	m := make(map[int64][9]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [9]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v72-mid
	}
	return m
}

//go:noinline
func build_v72_big() any {
	m := make(map[int64][9]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [9]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v72-big
	}
	return m
}

//go:noinline
func build_v128_small() any {
	m := make(map[int64][16]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [16]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v128-small
	}
	return m
}

//go:noinline
func build_v128_mid() any {
	m := make(map[int64][16]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [16]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v128-mid
	}
	return m
}

//go:noinline
func build_v128_big() any {
	m := make(map[int64][16]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [16]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v128-big
	}
	return m
}

//go:noinline
func build_v136_small() any {
	m := make(map[int64][17]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [17]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v136-small
	}
	return m
}

//go:noinline
func build_v136_mid() any {
	m := make(map[int64][17]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [17]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v136-mid
	}
	return m
}

//go:noinline
func build_v136_big() any {
	m := make(map[int64][17]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [17]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v136-big
	}
	return m
}

//go:noinline
func build_v256_small() any {
	m := make(map[int64][32]int64)
	for i := 0; i < 6; i++ {
		var k int64
		var v [32]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v256-small
	}
	return m
}

//go:noinline
func build_v256_mid() any {
	m := make(map[int64][32]int64)
	for i := 0; i < 400; i++ {
		var k int64
		var v [32]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v256-mid
	}
	return m
}

//go:noinline
func build_v256_big() any {
	m := make(map[int64][32]int64)
	for i := 0; i < 60000; i++ {
		var k int64
		var v [32]int64
		k = int64(i)
		v[0] = int64(i)
		m[k] = v // SITE v256-big
	}
	return m
}

//go:noinline
func build_k16_small() any {
	m := make(map[[2]int64]int64)
	for i := 0; i < 6; i++ {
		var k [2]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k16-small
	}
	return m
}

//go:noinline
func build_k16_mid() any {
	m := make(map[[2]int64]int64)
	for i := 0; i < 400; i++ {
		var k [2]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k16-mid
	}
	return m
}

//go:noinline
func build_k16_big() any {
	m := make(map[[2]int64]int64)
	for i := 0; i < 60000; i++ {
		var k [2]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k16-big
	}
	return m
}

//go:noinline
func build_k24_small() any {
	m := make(map[[3]int64]int64)
	for i := 0; i < 6; i++ {
		var k [3]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k24-small
	}
	return m
}

//go:noinline
func build_k24_mid() any {
	m := make(map[[3]int64]int64)
	for i := 0; i < 400; i++ {
		var k [3]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k24-mid
	}
	return m
}

//go:noinline
func build_k24_big() any {
	m := make(map[[3]int64]int64)
	for i := 0; i < 60000; i++ {
		var k [3]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k24-big
	}
	return m
}

//go:noinline
func build_k64_small() any {
	m := make(map[[8]int64]int64)
	for i := 0; i < 6; i++ {
		var k [8]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k64-small
	}
	return m
}

//go:noinline
func build_k64_mid() any {
	m := make(map[[8]int64]int64)
	for i := 0; i < 400; i++ {
		var k [8]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k64-mid
	}
	return m
}

//go:noinline
func build_k64_big() any {
	m := make(map[[8]int64]int64)
	for i := 0; i < 60000; i++ {
		var k [8]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k64-big
	}
	return m
}

//go:noinline
func build_k72_small() any {
	m := make(map[[9]int64]int64)
	for i := 0; i < 6; i++ {
		var k [9]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k72-small
	}
	return m
}

//go:noinline
func build_k72_mid() any {
	m := make(map[[9]int64]int64)
	for i := 0; i < 400; i++ {
		var k [9]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k72-mid
	}
	return m
}

//go:noinline
func build_k72_big() any {
	m := make(map[[9]int64]int64)
	for i := 0; i < 60000; i++ {
		var k [9]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k72-big
	}
	return m
}

//go:noinline
func build_k128_small() any {
	m := make(map[[16]int64]int64)
	for i := 0; i < 6; i++ {
		var k [16]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k128-small
	}
	return m
}

//go:noinline
func build_k128_mid() any {
	m := make(map[[16]int64]int64)
	for i := 0; i < 400; i++ {
		var k [16]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k128-mid
	}
	return m
}

//go:noinline
func build_k128_big() any {
	m := make(map[[16]int64]int64)
	for i := 0; i < 60000; i++ {
		var k [16]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k128-big
	}
	return m
}

//go:noinline
func build_k136_small() any {
	m := make(map[[17]int64]int64)
	for i := 0; i < 6; i++ {
		var k [17]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k136-small
	}
	return m
}

//go:noinline
func build_k136_mid() any {
	m := make(map[[17]int64]int64)
	for i := 0; i < 400; i++ {
		var k [17]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k136-mid
	}
	return m
}

//go:noinline
func build_k136_big() any {
	m := make(map[[17]int64]int64)
	for i := 0; i < 60000; i++ {
		var k [17]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k136-big
	}
	return m
}

//go:noinline
func build_k256_small() any {
	m := make(map[[32]int64]int64)
	for i := 0; i < 6; i++ {
		var k [32]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k256-small
	}
	return m
}

//go:noinline
func build_k256_mid() any {
	m := make(map[[32]int64]int64)
	for i := 0; i < 400; i++ {
		var k [32]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k256-mid
	}
	return m
}

//go:noinline
func build_k256_big() any {
	m := make(map[[32]int64]int64)
	for i := 0; i < 60000; i++ {
		var k [32]int64
		var v int64
		k[0] = int64(i)
		v = int64(i)
		m[k] = v // SITE k256-big
	}
	return m
}

// Controls: memory that is not a map, at its own lines.

//go:noinline
func growBuffer() any {
	var b []byte
	for i := 0; i < 4<<20; i += 1024 {
		b = append(b, make([]byte, 1024)...) // SITE control-buffer
	}
	return b
}

//go:noinline
func manyBuffers() any {
	bufs := make([][]byte, 0, 1024)
	for i := 0; i < 1024; i++ {
		bufs = append(bufs, make([]byte, 4096)) // SITE control-buffers
	}
	return bufs
}

//go:noinline
func manyStrings() any {
	strs := make([]string, 0, 50000)
	for i := 0; i < 50000; i++ {
		strs = append(strs, fmt.Sprintf("key-%08d-%s", i, "padding-padding")) // SITE control-strings
	}
	return strs
}

func main() {
	out := flag.String("out", "", "write the proto heap profile here, print the truth and exit")
	addr := flag.String("addr", "", "serve net/http/pprof and /truth on this address after building")
	maxLifetime := flag.Duration("max-lifetime", 0, "with -addr: exit after this long (0: never), so a forgotten target ends")
	flag.Parse()
	truth.GoVersion = runtime.Version()
	measure("v8-small", "main.build_v8_small", "map", 8, 8, 6, build_v8_small)
	measure("v8-mid", "main.build_v8_mid", "map", 8, 8, 400, build_v8_mid)
	measure("v8-big", "main.build_v8_big", "map", 8, 8, 60000, build_v8_big)
	measure("v16-small", "main.build_v16_small", "map", 8, 16, 6, build_v16_small)
	measure("v16-mid", "main.build_v16_mid", "map", 8, 16, 400, build_v16_mid)
	measure("v16-big", "main.build_v16_big", "map", 8, 16, 60000, build_v16_big)
	measure("v24-small", "main.build_v24_small", "map", 8, 24, 6, build_v24_small)
	measure("v24-mid", "main.build_v24_mid", "map", 8, 24, 400, build_v24_mid)
	measure("v24-big", "main.build_v24_big", "map", 8, 24, 60000, build_v24_big)
	measure("v64-small", "main.build_v64_small", "map", 8, 64, 6, build_v64_small)
	measure("v64-mid", "main.build_v64_mid", "map", 8, 64, 400, build_v64_mid)
	measure("v64-big", "main.build_v64_big", "map", 8, 64, 60000, build_v64_big)
	measure("v72-small", "main.build_v72_small", "map", 8, 72, 6, build_v72_small)
	measure("v72-mid", "main.build_v72_mid", "map", 8, 72, 400, build_v72_mid)
	measure("v72-big", "main.build_v72_big", "map", 8, 72, 60000, build_v72_big)
	measure("v128-small", "main.build_v128_small", "map", 8, 128, 6, build_v128_small)
	measure("v128-mid", "main.build_v128_mid", "map", 8, 128, 400, build_v128_mid)
	measure("v128-big", "main.build_v128_big", "map", 8, 128, 60000, build_v128_big)
	measure("v136-small", "main.build_v136_small", "map", 8, 136, 6, build_v136_small)
	measure("v136-mid", "main.build_v136_mid", "map", 8, 136, 400, build_v136_mid)
	measure("v136-big", "main.build_v136_big", "map", 8, 136, 60000, build_v136_big)
	measure("v256-small", "main.build_v256_small", "map", 8, 256, 6, build_v256_small)
	measure("v256-mid", "main.build_v256_mid", "map", 8, 256, 400, build_v256_mid)
	measure("v256-big", "main.build_v256_big", "map", 8, 256, 60000, build_v256_big)
	measure("k16-small", "main.build_k16_small", "map", 16, 8, 6, build_k16_small)
	measure("k16-mid", "main.build_k16_mid", "map", 16, 8, 400, build_k16_mid)
	measure("k16-big", "main.build_k16_big", "map", 16, 8, 60000, build_k16_big)
	measure("k24-small", "main.build_k24_small", "map", 24, 8, 6, build_k24_small)
	measure("k24-mid", "main.build_k24_mid", "map", 24, 8, 400, build_k24_mid)
	measure("k24-big", "main.build_k24_big", "map", 24, 8, 60000, build_k24_big)
	measure("k64-small", "main.build_k64_small", "map", 64, 8, 6, build_k64_small)
	measure("k64-mid", "main.build_k64_mid", "map", 64, 8, 400, build_k64_mid)
	measure("k64-big", "main.build_k64_big", "map", 64, 8, 60000, build_k64_big)
	measure("k72-small", "main.build_k72_small", "map", 72, 8, 6, build_k72_small)
	measure("k72-mid", "main.build_k72_mid", "map", 72, 8, 400, build_k72_mid)
	measure("k72-big", "main.build_k72_big", "map", 72, 8, 60000, build_k72_big)
	measure("k128-small", "main.build_k128_small", "map", 128, 8, 6, build_k128_small)
	measure("k128-mid", "main.build_k128_mid", "map", 128, 8, 400, build_k128_mid)
	measure("k128-big", "main.build_k128_big", "map", 128, 8, 60000, build_k128_big)
	measure("k136-small", "main.build_k136_small", "map", 136, 8, 6, build_k136_small)
	measure("k136-mid", "main.build_k136_mid", "map", 136, 8, 400, build_k136_mid)
	measure("k136-big", "main.build_k136_big", "map", 136, 8, 60000, build_k136_big)
	measure("k256-small", "main.build_k256_small", "map", 256, 8, 6, build_k256_small)
	measure("k256-mid", "main.build_k256_mid", "map", 256, 8, 400, build_k256_mid)
	measure("k256-big", "main.build_k256_big", "map", 256, 8, 60000, build_k256_big)
	measure("control-buffer", "main.growBuffer", "other", 0, 0, 0, growBuffer)
	measure("control-buffers", "main.manyBuffers", "other", 0, 0, 0, manyBuffers)
	measure("control-strings", "main.manyStrings", "other", 0, 0, 0, manyStrings)
	runtime.GC()
	runtime.GC() // in-use figures are those of the last completed cycle

	doc, err := json.Marshal(truth)
	if err != nil {
		log.Fatal(err)
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(doc))
		runtime.KeepAlive(keep)
		return
	}
	if *addr == "" {
		log.Fatal("need -out or -addr")
	}
	http.HandleFunc("/truth", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(doc))
	fmt.Printf("listening on %s\n", ln.Addr())
	if *maxLifetime > 0 {
		time.AfterFunc(*maxLifetime, func() { os.Exit(0) })
	}
	log.Fatal(http.Serve(ln, nil))
}
