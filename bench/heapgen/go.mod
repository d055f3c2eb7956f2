module mapleakprobe.bench/heapgen

go 1.19
