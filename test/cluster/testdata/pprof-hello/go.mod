module mapleakprobe.local/testdata/pprof-hello

go 1.19
