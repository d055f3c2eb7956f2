module mapleakprobe.test/debug1flood

go 1.19
