module mapleakprobe.test/gated

go 1.19
