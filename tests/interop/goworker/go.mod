module credlock.dev/interop-goworker

go 1.19

require credlock.dev/credlock v0.0.0

replace credlock.dev/credlock => ../../../host/go
