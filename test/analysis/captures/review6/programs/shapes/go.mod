module acc.test/shapes

go 1.26
