module mapleakprobe.test/greedy

go 1.19
