// The Go process of the mixed adapters test (tests/adapters-mixed): `goworker STORE TENANT
// URL GO SECONDS` waits for the file GO, then GETs URL through credlock's golang.org/x/oauth2
// adapter (credlock.dev/credlock/oauth2) from four goroutines until SECONDS have passed, and
// prints one JSON object: how many calls, and every one that was not a 200.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"credlock.dev/credlock"
	credlockoauth2 "credlock.dev/credlock/oauth2"
)

const goroutines = 4

type result struct {
	Kind   string   `json:"kind"`
	Calls  int      `json:"calls"`
	Failed []string `json:"failed"`
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "goworker:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 {
		fail(fmt.Errorf("usage: goworker STORE TENANT URL GO SECONDS"))
	}
	dir, tenant, url, goFile := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	seconds, err := strconv.ParseFloat(os.Args[5], 64)
	if err != nil {
		fail(err)
	}
	s, err := credlock.Open(dir, &credlock.Options{LockTimeout: time.Minute})
	if err != nil {
		fail(err)
	}
	defer s.Close()
	client := credlockoauth2.NewClient(context.Background(), s, tenant)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("GO never came"))
		}
	}
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	r := result{Kind: "go-oauth2", Failed: []string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				resp, err := client.Get(url)
				var failure string
				if err != nil {
					failure = err.Error()
				} else {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failure = fmt.Sprintf("%d %s", resp.StatusCode, body)
					}
				}
				mu.Lock()
				r.Calls++
				if failure != "" {
					r.Failed = append(r.Failed, failure)
				}
				mu.Unlock()
				if !time.Now().Before(end) {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
