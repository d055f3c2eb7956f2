module mapleakprobe.test/ramp

go 1.26
