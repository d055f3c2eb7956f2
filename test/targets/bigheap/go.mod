module mapleakprobe.test/bigheap

go 1.26
