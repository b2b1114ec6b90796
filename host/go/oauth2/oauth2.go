// Package oauth2 puts credlock behind golang.org/x/oauth2: a TokenSource whose every token
// comes from a credlock store (refreshed once across every process and goroutine that share
// it, never by oauth2 itself), an http.Client that answers a 401 with one refresh of the
// rejected token and one retry, and a helper that stores what Config.Exchange returned.
//
//	store, _ := credlock.Open("", nil)
//	client := credlockoauth2.NewClient(ctx, store, "acme")          // instead of conf.Client
//	resp, err := client.Get("https://api.example.com/")
//
// A module of its own, so that the credlock package keeps no dependency.
package oauth2

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"credlock.dev/credlock"
	"golang.org/x/oauth2"
)

// DefaultMinValid is how long a token must stay valid for a request: credlock refreshes it
// when less is left (capped at half the token's lifetime).
const DefaultMinValid = 60 * time.Second

// TokenSource is an oauth2.TokenSource over one tenant of a credlock store. It is safe for
// concurrent use; each Token call asks the store (about 20 µs when the token is fresh), so it
// needs no oauth2.ReuseTokenSource, and must not be wrapped in one that would refresh by
// itself.
type TokenSource struct {
	Store  *credlock.Store
	Tenant string
	// MinValid is how long the token must stay valid; DefaultMinValid when zero.
	MinValid time.Duration
	// Context bounds each store call (lock waits, a refresh); context.Background when nil.
	Context context.Context
}

// NewTokenSource returns the TokenSource of tenant in store.
func NewTokenSource(store *credlock.Store, tenant string) *TokenSource {
	return &TokenSource{Store: store, Tenant: tenant}
}

func (ts *TokenSource) ctx() context.Context {
	if ts.Context != nil {
		return ts.Context
	}
	return context.Background()
}

func (ts *TokenSource) minValid() time.Duration {
	if ts.MinValid > 0 {
		return ts.MinValid
	}
	return DefaultMinValid
}

func toOAuth2(a *credlock.AccessToken) *oauth2.Token {
	// Bearer whatever the server wrote ("bearer"): the header's scheme is case-insensitive,
	// and oauth2 sends Type() as it is.
	return &oauth2.Token{AccessToken: a.Token, TokenType: "Bearer", Expiry: a.ExpiresAt}
}

// Token returns the tenant's access token, refreshed by credlock if it is about to expire.
// The refresh token never leaves the store: oauth2 cannot refresh on its own.
func (ts *TokenSource) Token() (*oauth2.Token, error) {
	a, err := ts.Store.TokenInfo(ts.ctx(), ts.Tenant, ts.minValid())
	if err != nil {
		return nil, err
	}
	return toOAuth2(a), nil
}

// Rejected reports that a resource server refused tok with 401 and returns the token to use
// instead: credlock refreshes only if tok is still the stored token, so goroutines and
// processes that meet the same 401 together cost one refresh.
func (ts *TokenSource) Rejected(tok *oauth2.Token) (*oauth2.Token, error) {
	a, err := ts.Store.Refresh(ts.ctx(), ts.Tenant, credlock.Rejected(tok.AccessToken))
	if err != nil {
		return nil, err
	}
	return toOAuth2(a), nil
}

// Transport authorizes each request with the TokenSource's token and, unlike
// oauth2.Transport, answers a 401 by reporting the token as rejected and sending the request
// once more with the token credlock returns. A request whose body cannot be sent again (no
// GetBody) gets its 401 back.
type Transport struct {
	Source *TokenSource
	// Base is the transport requests go through; http.DefaultTransport when nil.
	Base http.RoundTripper
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// authorized is a copy of req (a RoundTripper must not change the caller's) carrying tok.
func authorized(req *http.Request, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	tok.SetAuthHeader(r)
	return r
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Source == nil {
		return nil, errors.New("credlock oauth2.Transport: no Source")
	}
	tok, err := t.Source.Token()
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base().RoundTrip(authorized(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	replay := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replay {
		return resp, nil
	}
	fresh, rerr := t.Source.Rejected(tok)
	if rerr != nil {
		// The 401 is the answer; the refresh's failure is for the next call to meet.
		return resp, nil
	}
	retry := authorized(req, fresh)
	if req.GetBody != nil {
		body, berr := req.GetBody()
		if berr != nil {
			return resp, nil
		}
		retry.Body = body
	}
	// The first response is discarded: drain it so its connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return t.base().RoundTrip(retry)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// NewClient returns an http.Client whose requests carry the tenant's token (see Transport).
// The context's oauth2.HTTPClient, if any, is the transport underneath, as with
// oauth2.NewClient.
func NewClient(ctx context.Context, store *credlock.Store, tenant string) *http.Client {
	var base http.RoundTripper
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil {
		base = c.Transport
	}
	return &http.Client{Transport: &Transport{Source: NewTokenSource(store, tenant), Base: base}}
}

// StoreToken stores tok, as Config.Exchange returned it, as tenant's tokens, with what
// credlock needs to refresh them from conf: the token endpoint, the client and how it
// authenticates. A program's own login flow then feeds credlock, and every later token comes
// from the store.
func StoreToken(ctx context.Context, store *credlock.Store, tenant string, conf *oauth2.Config, tok *oauth2.Token) error {
	if tok == nil || tok.AccessToken == "" {
		return errors.New("credlock: no access token to store")
	}
	raw, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	doc := map[string]any{}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	// Extra fields the server sent (id_token, ...) are kept with the token.
	for _, k := range []string{"id_token", "scope"} {
		if v, ok := tok.Extra(k).(string); ok && v != "" {
			doc[k] = v
		}
	}
	if conf != nil && conf.Endpoint.TokenURL != "" {
		doc["token_endpoint"] = conf.Endpoint.TokenURL
		doc["client_id"] = conf.ClientID
		if conf.ClientSecret != "" {
			doc["client_secret"] = conf.ClientSecret
			if conf.Endpoint.AuthStyle == oauth2.AuthStyleInParams {
				doc["client_auth"] = "post"
			} else {
				// Basic, what oauth2's auto-detection tries first.
				doc["client_auth"] = "basic"
			}
		}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, tenant, body)
	return err
}
