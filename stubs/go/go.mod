module rtt.local/stubs/go

go 1.19
