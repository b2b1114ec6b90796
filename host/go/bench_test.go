package credlock

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// Hot in-process Token: the store open, the token valid, one goroutine.
// Run against the release library with host/go/bench.sh.
func BenchmarkToken(b *testing.B) {
	ctx := context.Background()
	s := openT(b, filepath.Join(b.TempDir(), "store"), nil)
	if _, err := s.Put(ctx, "acme", []byte(farToken)); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		s.Token(ctx, "acme", time.Minute)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Token(ctx, "acme", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// The same with a cancelable context (the call runs in its own goroutine).
func BenchmarkTokenCancelableContext(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openT(b, filepath.Join(b.TempDir(), "store"), nil)
	if _, err := s.Put(ctx, "acme", []byte(farToken)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Token(ctx, "acme", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// Token from many goroutines at once on one *Store.
func BenchmarkTokenParallel(b *testing.B) {
	ctx := context.Background()
	s := openT(b, filepath.Join(b.TempDir(), "store"), nil)
	if _, err := s.Put(ctx, "acme", []byte(farToken)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Token(ctx, "acme", time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
