module mapleakprobe.test/hostile

go 1.19
