module credlock.dev/credlock/oauth2

go 1.19

require (
	credlock.dev/credlock v0.1.0
	golang.org/x/oauth2 v0.26.0
)
