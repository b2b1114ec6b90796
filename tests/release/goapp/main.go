// A Go program outside the repository, as a user writes one after
// `go get credlock.dev/credlock@vX.Y.Z` (tests/release/run.sh builds it against the module
// from dist/goproxy): it opens a store, stores a token, reads it back and says which
// credlock it runs. `goapp STORE`
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"credlock.dev/credlock"
)

func main() {
	ctx := context.Background()
	s, err := credlock.Open(os.Args[1], &credlock.Options{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "goapp:", err)
		os.Exit(1)
	}
	defer s.Close()
	if _, err := s.Put(ctx, "acme", []byte(`{"access_token":"from-go","expires_in":3600}`)); err != nil {
		fmt.Fprintln(os.Stderr, "goapp: put:", err)
		os.Exit(1)
	}
	token, err := s.Token(ctx, "acme", time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goapp: token:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]string{
		"version": credlock.Version(), "component_sha256": credlock.ComponentSHA256(), "token": token,
	})
	fmt.Println(string(out))
}
