module mapleakprobe.test/badpprof

go 1.19
