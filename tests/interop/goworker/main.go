// A Go worker for the cross-language tests: `write STORE NAME K` or
// `storm STORE SECONDS BASE_URL`, the same as workers.py and workers.mjs; and for
// bench/languages.py, `token STORE TENANT` (a one-shot process), `noop` (its floor) and `hot STORE N`
// (p50 of N in-process Token calls).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"

	"credlock.dev/credlock"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go worker:", err)
	os.Exit(1)
}

func main() {
	if os.Args[1] == "noop" {
		return
	}
	mode, dir := os.Args[1], os.Args[2]
	s, err := credlock.Open(dir, &credlock.Options{LockTimeout: 120 * time.Second})
	if err != nil {
		fail(err)
	}
	defer s.Close()
	ctx := context.Background()
	switch mode {
	case "write":
		name := os.Args[3]
		k, _ := strconv.Atoi(os.Args[4])
		for i := 0; i < k; i++ {
			doc := []byte(fmt.Sprintf(`{"access_token":"%s-%d"}`, name, i))
			for _, tenant := range []string{name, "shared"} {
				if _, err := s.Put(ctx, tenant, doc); err != nil {
					fail(err)
				}
			}
			// Read someone else's writes while we are at it: must always decode.
			if _, err := s.List(ctx); err != nil {
				fail(err)
			}
		}
		fmt.Println(`{"ok": true}`)
	case "storm":
		seconds, _ := strconv.ParseFloat(os.Args[3], 64)
		base := os.Args[4]
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		call := func(token string) bool {
			req, _ := http.NewRequest("GET", base+"/resource", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				fail(err)
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}
		deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
		calls, rejected, failed := 0, 0, 0
		for time.Now().Before(deadline) {
			token, err := s.Token(ctx, "acme", time.Second)
			if err != nil {
				fail(err)
			}
			if !call(token) {
				// The 401 path: refresh only if the stored token is still the refused one.
				rejected++
				t, err := s.Refresh(ctx, "acme", credlock.Rejected(token))
				if err != nil {
					fail(err)
				}
				if !call(t.Token) {
					failed++
				}
			}
			calls++
		}
		out, _ := json.Marshal(map[string]int{"calls": calls, "rejected": rejected, "failed": failed})
		fmt.Println(string(out))
	case "hot":
		// bench/languages.py: p50 of a hot in-process Token, in µs.
		n, _ := strconv.Atoi(os.Args[3])
		for i := 0; i < 1000; i++ {
			if _, err := s.Token(ctx, "acme", time.Minute); err != nil {
				fail(err)
			}
		}
		xs := make([]time.Duration, n)
		for i := range xs {
			t := time.Now()
			if _, err := s.Token(ctx, "acme", time.Minute); err != nil {
				fail(err)
			}
			xs[i] = time.Since(t)
		}
		sort.Slice(xs, func(a, b int) bool { return xs[a] < xs[b] })
		fmt.Printf("%.1f\n", float64(xs[n/2].Nanoseconds())/1e3)
	case "token":
		token, err := s.Token(ctx, os.Args[3], time.Minute)
		if err != nil {
			fail(err)
		}
		fmt.Println(token)
	default:
		fail(fmt.Errorf("unknown mode %q", mode))
	}
}
