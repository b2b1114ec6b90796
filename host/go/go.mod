module credlock.dev/credlock

go 1.19
