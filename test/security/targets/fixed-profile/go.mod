module mapleakprobe.test/fixedprofile

go 1.19
