module mapleakprobe.test/shapes

go 1.19
