module mapleakprobe.test/leaky

go 1.19
