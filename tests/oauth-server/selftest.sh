#!/usr/bin/env bash
# Self-test of the test OAuth server: starts it, drives every endpoint with
# curl, stops it. Prints "N passed, 0 failed" and exits 0 on success; exits
# non-zero on any failure. Needs bash, curl, node.
set -uo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/oauth-selftest.XXXXXX")"
PORT_FILE="$WORK/port"
PASS=0
FAIL=0
TOKENS="$WORK/tokens" # every token value seen, to check none reaches the log
ATTL=30 # access-token TTL for the main instance; a second instance checks the defaults
unset ACCESS_TTL_SECONDS REFRESH_TTL_SECONDS GRANT_TTL_SECONDS
: >"$TOKENS"

cleanup() {
  "$DIR/stop.sh" "$PORT_FILE.pid" >/dev/null 2>&1 || true
  "$DIR/stop.sh" "$WORK/second.pid" >/dev/null 2>&1 || true
  if [ "$FAIL" -ne 0 ] && [ -f "$PORT_FILE.log" ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$PORT_FILE.log" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1${2:+ ($2)}"; }
check() { # check DESC EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected [$2], got [$3]"; fi
}
check_ne() { # check_ne DESC A B
  if [ "$2" != "$3" ]; then ok "$1"; else bad "$1" "both are [$2]"; fi
}

# req ARGS... : curl; sets STATUS, BODY, CTYPE, TIME_MS, CURL_RC
req() {
  local out="$WORK/body" meta secs
  meta="$(curl -sS -o "$out" -w '%{http_code} %{time_total} %{content_type}' "$@" 2>"$WORK/curl.err")"
  CURL_RC=$?
  read -r STATUS secs CTYPE <<<"$meta"
  TIME_MS="$(awk -v s="$secs" 'BEGIN { printf "%d", s * 1000 }')"
  BODY="$(cat "$out" 2>/dev/null || true)"
  rm -f "$out"
}

# j PATH [JSON] : extract a dotted path from JSON (default: $BODY); prints
# <undefined> if absent, <invalid-json> if the input does not parse.
j() {
  printf '%s' "${2-$BODY}" | node -e '
    let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
      let v;
      try { v = JSON.parse(s); } catch { process.stdout.write("<invalid-json>"); return; }
      for (const k of process.argv[1].split(".")) v = v == null ? undefined : v[k];
      process.stdout.write(v === undefined ? "<undefined>" : typeof v === "object" ? JSON.stringify(v) : String(v));
    });' "$1"
}

post_json() { req -X POST -H 'content-type: application/json' -d "$2" "$URL$1"; }

# seed CLIENT [ACCOUNT] : POST /test/grant; sets AT RT GID
seed() {
  post_json /test/grant "{\"client_id\":\"$1\",\"account\":\"${2:-alice}\",\"scope\":\"openid offline_access api\"}"
  { read -r AT; read -r RT; read -r GID; } < <(printf '%s' "$BODY" | node -e '
    let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
      let o = {}; try { o = JSON.parse(s); } catch { /* reported by the checks */ }
      for (const k of ["access_token", "refresh_token", "grant_id"]) console.log(o[k] ?? "<undefined>");
    });')
  printf '%s\n%s\n' "$AT" "$RT" >>"$TOKENS"
}

# refresh CLIENT RT [extra curl args] : refresh with the client's own auth method
refresh() {
  local client="$1" rt="$2"; shift 2
  case "$client" in
    conf-basic) req "$@" -u conf-basic:basic-secret --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$rt" "$URL/token" ;;
    conf-post) req "$@" --data-urlencode grant_type=refresh_token --data-urlencode client_id=conf-post --data-urlencode client_secret=post-secret --data-urlencode "refresh_token=$rt" "$URL/token" ;;
    public-app) req "$@" --data-urlencode grant_type=refresh_token --data-urlencode client_id=public-app --data-urlencode "refresh_token=$rt" "$URL/token" ;;
    *) echo "unknown client $client" >&2; exit 2 ;;
  esac
  if [ "$STATUS" = 200 ]; then
    printf '%s\n%s\n' "$(j access_token)" "$(j refresh_token)" >>"$TOKENS"
  fi
}

stats_get() { req "$URL/test/stats"; j "$1"; }
reset() { req -X POST "$URL/test/reset"; }
fault() { post_json /test/fault "$1"; }
resource() { req -H "Authorization: Bearer $1" "$URL/resource"; }

# ---------------------------------------------------------------------------
echo "# starting server (ACCESS_TTL_SECONDS=$ATTL, so that timing does not blur revoked vs expired)"
if ! ACCESS_TTL_SECONDS="$ATTL" "$DIR/start.sh" "$PORT_FILE"; then
  bad "start.sh brings the server up"
  echo "0 passed, 1 failed"
  exit 1
fi
URL="$(cat "$PORT_FILE")"
ok "start.sh brings the server up at $URL"
case "$URL" in http://127.0.0.1:[0-9]*) ok "bound to 127.0.0.1" ;; *) bad "bound to 127.0.0.1" "$URL" ;; esac
check "pid file holds a running pid" 0 "$(kill -0 "$(cat "$PORT_FILE.pid")" 2>/dev/null; echo $?)"

echo "# discovery"
req "$URL/.well-known/openid-configuration"
check "discovery 200" 200 "$STATUS"
check "issuer is the base URL" "$URL" "$(j issuer)"
check "token_endpoint is /token" "$URL/token" "$(j token_endpoint)"

echo "# seeding (POST /test/grant)"
reset
seed conf-basic alice
check "seed: access_token present" 1 "$([ ${#AT} -gt 20 ] && echo 1)"
check "seed: refresh_token present" 1 "$([ ${#RT} -gt 20 ] && echo 1)"
check "seed: token_type" Bearer "$(j token_type)"
check "seed: expires_in = ACCESS_TTL_SECONDS" "$ATTL" "$(j expires_in)"
check "seed: scope" "openid offline_access api" "$(j scope)"
check_ne "seed: grant_id present" "<undefined>" "$GID"
post_json /test/grant '{"client_id":"nope"}'
check "seed: unknown client -> 400" 400 "$STATUS"
post_json /test/grant '{"client_id":"conf-basic","scope":"openid admin"}'
check "seed: unknown scope -> 400 invalid_scope" "400 invalid_scope" "$STATUS $(j error)"

echo "# protected resource"
resource "$AT"
check "resource: valid AT -> 200" 200 "$STATUS"
check "resource: ok/account" "true alice" "$(j ok) $(j account)"
resource "not-a-token"
check "resource: bogus AT -> 401" 401 "$STATUS"
check "resource: bogus AT reason unknown, no expiry" "unknown null" "$(j reason) $(j expires_at_ms)"
req "$URL/resource"
check "resource: no Authorization -> 401" 401 "$STATUS"

echo "# refresh: conf-basic (client_secret_basic)"
RT0="$RT"; AT0="$AT"; G_BASIC="$GID"
refresh conf-basic "$RT0"
check "basic: refresh 200" 200 "$STATUS"
RT1="$(j refresh_token)"; AT1="$(j access_token)"
check_ne "basic: refresh token rotated" "$RT0" "$RT1"
check "basic: expires_in present" "$ATTL" "$(j expires_in)"
check "basic: token_type Bearer" Bearer "$(j token_type)"
check "basic: scope kept" "openid offline_access api" "$(j scope)"
resource "$AT1"
check "basic: new AT accepted by /resource" 200 "$STATUS"
refresh conf-basic "$RT1"
check "basic: second refresh 200" 200 "$STATUS"
RT2="$(j refresh_token)"; AT2="$(j access_token)"
check_ne "basic: rotated again" "$RT1" "$RT2"
req -u conf-basic:wrong-secret --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$RT2" "$URL/token"
check "basic: wrong secret -> 401 invalid_client" "401 invalid_client" "$STATUS $(j error)"
# oidc-provider accepts either secret transport for client_secret_basic and
# client_secret_post clients; the method actually used shows up in the stats.
req --data-urlencode grant_type=refresh_token --data-urlencode client_id=conf-basic --data-urlencode client_secret=basic-secret --data-urlencode "refresh_token=$RT2" "$URL/token"
check "basic: secret in form body also accepted by oidc-provider" 200 "$STATUS"
RT3="$(j refresh_token)"; AT3="$(j access_token)"
printf '%s\n%s\n' "$AT3" "$RT3" >>"$TOKENS"
check "basic: ... and recorded as client_secret_post in stats" client_secret_post \
  "$(stats_get recent | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);process.stdout.write(r[r.length-1].auth_method)})')"

echo "# refresh: conf-post (client_secret_post)"
seed conf-post bob
G_POST="$GID"
refresh conf-post "$RT"
check "post: refresh 200" 200 "$STATUS"
P1="$(j refresh_token)"
check_ne "post: rotated" "$RT" "$P1"
check "post: expires_in present" "$ATTL" "$(j expires_in)"
resource "$(j access_token)"
check "post: /resource account" "200 bob" "$STATUS $(j account)"
refresh conf-post "$P1"
check "post: second refresh 200" 200 "$STATUS"
P2="$(j refresh_token)"
refresh conf-basic "$P2"
check "post: token presented by another client -> invalid_grant" "400 invalid_grant" "$STATUS $(j error)"

echo "# refresh: public-app (none)"
seed public-app carol
G_PUB="$GID"
refresh public-app "$RT"
check "public: refresh 200" 200 "$STATUS"
U1="$(j refresh_token)"
check_ne "public: rotated" "$RT" "$U1"
check "public: expires_in present" "$ATTL" "$(j expires_in)"
refresh public-app "$U1"
check "public: second refresh 200" 200 "$STATUS"

echo "# reuse detection (conf-basic grant: RT0 -> RT1 -> RT2 -> RT3, RT3 is current)"
resource "$AT3"
check "reuse: current AT3 valid before reuse" 200 "$STATUS"
refresh conf-basic "$RT1"
check "reuse: consumed RT1 -> 400 invalid_grant" "400 invalid_grant" "$STATUS $(j error)"
refresh conf-basic "$RT3"
check "reuse: newest RT3 now also invalid_grant (grant revoked)" "400 invalid_grant" "$STATUS $(j error)"
resource "$AT3"
check "reuse: AT of the revoked grant -> 401" 401 "$STATUS"
check "reuse: reason revoked" revoked "$(j reason)"
refresh conf-post "$P2"
check "reuse: other grants unaffected (conf-post P2 still works)" 200 "$STATUS"

echo "# concurrent presentation of one refresh token (double spend)"
seed conf-post grace
G_RACE="$GID"; WINNER_RT=""
curl -s -o "$WORK/race1" -w '%{http_code}' --data-urlencode grant_type=refresh_token --data-urlencode client_id=conf-post --data-urlencode client_secret=post-secret --data-urlencode "refresh_token=$RT" "$URL/token" >"$WORK/race1.code" &
curl -s -o "$WORK/race2" -w '%{http_code}' --data-urlencode grant_type=refresh_token --data-urlencode client_id=conf-post --data-urlencode client_secret=post-secret --data-urlencode "refresh_token=$RT" "$URL/token" >"$WORK/race2.code" &
wait
check "race: one 200 and one 400" "200 400" "$(printf '%s\n%s\n' "$(cat "$WORK/race1.code")" "$(cat "$WORK/race2.code")" | sort | tr '\n' ' ' | sed 's/ $//')"
for f in race1 race2; do
  RACE_RT="$(j refresh_token "$(cat "$WORK/$f")")"
  [ "$RACE_RT" != "<undefined>" ] && { WINNER_RT="$RACE_RT"; printf '%s\n' "$RACE_RT" >>"$TOKENS"; }
done
refresh conf-post "$WINNER_RT"
check "race: the winner's new token is dead too (grant revoked)" "400 invalid_grant" "$STATUS $(j error)"

echo "# stats"
req "$URL/test/stats"
S="$BODY"
# basic: RT0 ok, RT1 ok, RT2 wrong secret, RT2 ok (post), RT1 reuse, RT3 after revoke
#        = 6 requests, 3 ok, 2 invalid_grant, duplicates RT2 + RT1 = 2
# post:  P0 ok, P1 ok, P2 presented by conf-basic, P2 ok = 4, 3 ok, 1 invalid_grant, 1 dup
# public: 2 ok
# race: 2 concurrent + 1 = 3 requests, 1 ok, 2 invalid_grant, 1 dup, 1 revoked grant
check "stats: refresh_requests" 15 "$(j refresh_requests "$S")"
check "stats: refresh_successes" 9 "$(j refresh_successes "$S")"
check "stats: invalid_grant" 5 "$(j invalid_grant "$S")"
check "stats: duplicate_presentations" 4 "$(j duplicate_presentations "$S")"
check "stats: grants_revoked" 2 "$(j grants_revoked "$S")"
check "stats: errors.invalid_client" 1 "$(j errors.invalid_client "$S")"
# Basic header: 5 by conf-basic + P2 presented with conf-basic creds = 6; form secret: 1 conf-basic + 3 conf-post + 3 race; none: 2
check "stats: by_auth_method" '{"client_secret_basic":6,"client_secret_post":7,"none":2}' "$(j by_auth_method "$S")"
check "stats: by_grant basic (req/ok/invalid_grant/dup/revoked)" "6 3 2 2 true conf-basic" \
  "$(j "by_grant.$G_BASIC.refresh_requests" "$S") $(j "by_grant.$G_BASIC.refresh_successes" "$S") $(j "by_grant.$G_BASIC.invalid_grant" "$S") $(j "by_grant.$G_BASIC.duplicate_presentations" "$S") $(j "by_grant.$G_BASIC.revoked" "$S") $(j "by_grant.$G_BASIC.client_id" "$S")"
check "stats: by_grant post" "4 3 1 1 false" \
  "$(j "by_grant.$G_POST.refresh_requests" "$S") $(j "by_grant.$G_POST.refresh_successes" "$S") $(j "by_grant.$G_POST.invalid_grant" "$S") $(j "by_grant.$G_POST.duplicate_presentations" "$S") $(j "by_grant.$G_POST.revoked" "$S")"
check "stats: by_grant race" "3 1 2 1 true" \
  "$(j "by_grant.$G_RACE.refresh_requests" "$S") $(j "by_grant.$G_RACE.refresh_successes" "$S") $(j "by_grant.$G_RACE.invalid_grant" "$S") $(j "by_grant.$G_RACE.duplicate_presentations" "$S") $(j "by_grant.$G_RACE.revoked" "$S")"
check "stats: by_grant public" "2 2 0 0 false" \
  "$(j "by_grant.$G_PUB.refresh_requests" "$S") $(j "by_grant.$G_PUB.refresh_successes" "$S") $(j "by_grant.$G_PUB.invalid_grant" "$S") $(j "by_grant.$G_PUB.duplicate_presentations" "$S") $(j "by_grant.$G_PUB.revoked" "$S")"
# resource: seed AT, bogus, none, AT1, post AT, AT3 before, AT3 after revoke = 7 calls, 3 rejected
check "stats: resource_calls / resource_rejected" "7 3" "$(j resource_calls "$S") $(j resource_rejected "$S")"
check "stats: reuse recorded with detail" "refresh token already used" \
  "$(printf '%s' "$S" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).recent;process.stdout.write(String(r.find(e=>e.detail==="refresh token already used")?.detail))})')"
reset
check "reset: counters zero" "0 0 0 0 0 {}" "$(stats_get refresh_requests) $(stats_get invalid_grant) $(stats_get duplicate_presentations) $(stats_get grants_revoked) $(stats_get resource_calls) $(stats_get by_grant)"

echo "# second instance: defaults (ACCESS_TTL 2s), start.sh stdout mode"
URL_MAIN="$URL"
URL="$(OAUTH_SERVER_PID_FILE="$WORK/second.pid" OAUTH_SERVER_LOG="$WORK/second.log" "$DIR/start.sh" 2>"$WORK/second.err")"
case "$URL" in http://127.0.0.1:[0-9]*) ok "stdout mode: prints only the URL ($URL)" ;; *) bad "stdout mode: prints only the URL" "$URL" ;; esac
check_ne "stdout mode: a different instance" "$URL_MAIN" "$URL"
# (No "fresh token accepted" check here: exp has 1 s granularity, so a 2 s
# token may live only just over 1 s, too tight for a loaded machine. The
# main instance checks acceptance.)
seed public-app dave
EXP_AT="$AT"; EXP_RT="$RT"
check "defaults: seed expires_in = 2" 2 "$(j expires_in)"
sleep 2.2
resource "$EXP_AT"
check "defaults: AT rejected after 2s" 401 "$STATUS"
check "defaults: reason expired" expired "$(j reason)"
check "defaults: expired at most 2 s after it was issued, before now" 1 \
  "$(printf '%s' "$BODY" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);process.stdout.write(String(Number(r.now_ms>=r.expires_at_ms&&r.expires_at_ms<=Date.now()&&r.expires_at_ms>Date.now()-10000)))})')"
refresh public-app "$EXP_RT"
check "defaults: refresh after AT expiry 200, expires_in 2" "200 2" "$STATUS $(j expires_in)"
check "defaults: instances do not share state" "<undefined>" "$(stats_get "by_grant.$G_BASIC")"
SECOND_PID="$(cat "$WORK/second.pid")"
"$DIR/stop.sh" "$WORK/second.pid"
check "stop.sh: second instance gone" 1 "$(kill -0 "$SECOND_PID" 2>/dev/null || echo 1)"
URL="$URL_MAIN"

echo "# revocation endpoint (RFC 7009)"
seed conf-post erin
req --data-urlencode client_id=conf-post --data-urlencode client_secret=post-secret --data-urlencode "token=$RT" --data-urlencode token_type_hint=refresh_token "$URL/token/revocation"
check "revocation: 200" 200 "$STATUS"
refresh conf-post "$RT"
check "revocation: revoked RT -> invalid_grant" "400 invalid_grant" "$STATUS $(j error)"

echo "# faults"
reset
seed conf-basic frank
F_RT="$RT"; F_GID="$GID"

fault '{"mode":"bogus","count":1}'
check "fault: unknown mode -> 400" 400 "$STATUS"

fault '{"mode":"http500","count":2}'
check "fault: arm http500 x2" 200 "$STATUS"
resource "$AT"
seed conf-basic frank-other
check "fault: not consumed by /resource or /test/grant" '["http500","http500"]' "$(stats_get faults_pending)"
refresh conf-basic "$F_RT"
check "http500: 500 + JSON error" "500 server_error" "$STATUS $(j error)"
refresh conf-basic "$F_RT"
check "http500: second one too (count 2)" 500 "$STATUS"
refresh conf-basic "$F_RT"
check "http500: token untouched, third attempt succeeds" 200 "$STATUS"
F_RT="$(j refresh_token)"

fault '{"mode":"http503_html","count":1}'
refresh conf-basic "$F_RT"
check "http503_html: status 503" 503 "$STATUS"
case "$CTYPE" in text/html*) ok "http503_html: content-type text/html" ;; *) bad "http503_html: content-type text/html" "$CTYPE" ;; esac
case "$BODY" in *"<html"*) ok "http503_html: HTML body" ;; *) bad "http503_html: HTML body" "$BODY" ;; esac
refresh conf-basic "$F_RT"
check "http503_html: token untouched" 200 "$STATUS"
F_RT="$(j refresh_token)"

fault '{"mode":"malformed","count":1}'
refresh conf-basic "$F_RT"
check "malformed: 200" 200 "$STATUS"
check "malformed: truncated body" '{"access_token": "x",' "$BODY"
check "malformed: body is not JSON" "<invalid-json>" "$(j access_token)"
refresh conf-basic "$F_RT"
check "malformed: token not rotated, still works" 200 "$STATUS"
F_RT="$(j refresh_token)"

fault '{"mode":"hang","count":1}'
T0=$SECONDS
refresh conf-basic "$F_RT" --max-time 2
check "hang: client times out (curl rc 28)" 28 "$CURL_RC"
check "hang: waited ~2s, not 60s" 1 "$([ $((SECONDS - T0)) -lt 10 ] && echo 1)"
refresh conf-basic "$F_RT"
check "hang: token untouched, next attempt succeeds" 200 "$STATUS"
F_RT="$(j refresh_token)"

fault '{"mode":"no_expires_in","count":1}'
refresh conf-basic "$F_RT"
check "no_expires_in: 200" 200 "$STATUS"
check "no_expires_in: expires_in absent" "<undefined>" "$(j expires_in)"
check_ne "no_expires_in: rotated" "$F_RT" "$(j refresh_token)"
F_RT="$(j refresh_token)"
refresh conf-basic "$F_RT"
check "no_expires_in: one-shot, next reply has expires_in" "$ATTL" "$(j expires_in)"
F_RT="$(j refresh_token)"

fault '{"mode":"slow","count":1,"delay_ms":1500}'
refresh conf-basic "$F_RT"
check "slow: 200" 200 "$STATUS"
check "slow: delayed >= 1500ms (took ${TIME_MS}ms)" 1 "$([ "$TIME_MS" -ge 1500 ] && echo 1)"
check "slow: expires_in present" "$ATTL" "$(j expires_in)"
F_RT="$(j refresh_token)"

fault '{"mode":"redirect","count":1}'
refresh conf-basic "$F_RT"
check "redirect: 302, not followed" 302 "$STATUS"
fault '{"mode":"huge","count":1}'
refresh conf-basic "$F_RT"
check "huge: 200 with 2 MiB" "200 2097152" "$STATUS ${#BODY}"
fault '{"mode":"huge_chunked","count":1}'
refresh conf-basic "$F_RT"
check "huge_chunked: 200 with 2 MiB" "200 2097152" "$STATUS ${#BODY}"
refresh conf-basic "$F_RT"
check "redirect, huge: token untouched" 200 "$STATUS"
F_RT="$(j refresh_token)"

fault '{"mode":"cut_after_rotate","count":1}'
refresh conf-basic "$F_RT"
check "cut_after_rotate: no reply (curl rc 52 empty reply)" 52 "$CURL_RC"
check "cut_after_rotate: server counted a success" "ok" \
  "$(stats_get recent | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);process.stdout.write(r[r.length-1].outcome)})')"
refresh conf-basic "$F_RT"
check "cut_after_rotate: retrying the old token -> invalid_grant (it was rotated)" "400 invalid_grant" "$STATUS $(j error)"

req "$URL/test/stats"
S="$BODY"
# frank: 3 (http500 x2, ok) + 2 (503, ok) + 2 (malformed, ok) + 2 (hang, ok) + 2 (no_exp, ok) + 1 slow
#        + 4 (redirect, huge, huge_chunked, ok) + 2 (cut, reuse) = 18
check "fault stats: refresh_requests" 18 "$(j refresh_requests "$S")"
check "fault stats: refresh_successes (incl. cut_after_rotate)" 9 "$(j refresh_successes "$S")"
check "fault stats: invalid_grant" 1 "$(j invalid_grant "$S")"
# same token re-presented after each of http500 (x2), 503, malformed, hang, redirect, huge,
# huge_chunked, and after cut
check "fault stats: duplicate_presentations" 9 "$(j duplicate_presentations "$S")"
check "fault stats: grants_revoked" 1 "$(j grants_revoked "$S")"
check "fault stats: faults_injected" '{"http500":2,"http503_html":1,"malformed":1,"hang":1,"no_expires_in":1,"slow":1,"redirect":1,"huge":1,"huge_chunked":1,"cut_after_rotate":1}' "$(j faults_injected "$S")"
check "fault stats: by_grant frank revoked" "18 true" "$(j "by_grant.$F_GID.refresh_requests" "$S") $(j "by_grant.$F_GID.revoked" "$S")"
check "fault stats: nothing pending" "[]" "$(j faults_pending "$S")"

echo "# device flow (RFC 8628), browser flow (PKCE) and revocation"
req -X POST -d "client_id=device-app&scope=openid offline_access api" "$URL/device/auth"
check "device/auth: 200" 200 "$STATUS"
check "device/auth: interval announced (DEVICE_INTERVAL_SECONDS)" 1 "$(j interval)"
D_CODE="$(j device_code)"
U_CODE="$(j user_code)"
printf '%s\n' "$D_CODE" >>"$TOKENS"
poll() { req -X POST -d "grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=$D_CODE&client_id=device-app" "$URL/token"; }
poll
check "device poll before approval: authorization_pending" "400 authorization_pending" "$STATUS $(j error)"
post_json /test/device-fault '{"mode":"slow_down","count":1}'
poll
check "device fault slow_down" "400 slow_down" "$STATUS $(j error)"
post_json /test/device "{\"user_code\":\"$U_CODE\"}"
check "test/device approve: 200" 200 "$STATUS"
poll
check "device poll after approval: tokens" "200 Bearer" "$STATUS $(j token_type)"
D_RT="$(j refresh_token)"
printf '%s\n%s\n' "$(j access_token)" "$D_RT" >>"$TOKENS"
check_ne "device grant has a refresh token" "<undefined>" "$D_RT"
poll
check "device code is single-use" 400 "$STATUS"
req -X POST -d "token=$D_RT&token_type_hint=refresh_token&client_id=device-app" "$URL/token/revocation"
check "revocation: 200" 200 "$STATUS"
req -X POST -d "grant_type=refresh_token&refresh_token=$D_RT&client_id=device-app" "$URL/token"
check "revoked refresh token: invalid_grant" "400 invalid_grant" "$STATUS $(j error)"
req -X POST -d "client_id=device-app" "$URL/device/auth"
D_CODE="$(j device_code)"
post_json /test/device "{\"user_code\":\"$(j user_code)\",\"action\":\"deny\"}"
poll
check "denied device code: access_denied" "400 access_denied" "$STATUS $(j error)"
req "$URL/test/stats"
check "stats: device_authorizations" 2 "$(j device_authorizations)"
check "stats: device_polls" 5 "$(j device_polls)"
check "stats: revocations" 1 "$(j revocations)"
# Browser flow: /auth -> /interaction/:uid (signs in alice, grants) -> /auth/:uid -> callback.
JAR="$WORK/jar"
VERIFIER=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk # RFC 7636 appendix B
LOC="$URL/auth?response_type=code&client_id=device-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=openid+api&state=st1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
for _ in 1 2 3 4; do
  case "$LOC" in http://127.0.0.1:9/*) break ;; /*) LOC="$URL$LOC" ;; esac
  LOC="$(curl -sS -c "$JAR" -b "$JAR" -o /dev/null -w '%{redirect_url}' "$LOC")"
done
check "browser flow: redirected to the callback with the state" "st1" "$(printf '%s' "$LOC" | sed -n 's/.*[?&]state=\([^&]*\).*/\1/p')"
B_CODE="$(printf '%s' "$LOC" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')"
req -X POST -d "grant_type=authorization_code&code=$B_CODE&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&code_verifier=$VERIFIER&client_id=device-app" "$URL/token"
check "browser flow: code + verifier -> tokens" "200 Bearer" "$STATUS $(j token_type)"
printf '%s\n%s\n' "$(j access_token)" "$(j refresh_token)" >>"$TOKENS"

echo "# logs"
grep -v -e '^$' -e '^<' "$TOKENS" | sort -u >"$WORK/tokens.uniq"
check "collected the token values seen (sanity)" 1 "$([ "$(wc -l <"$WORK/tokens.uniq")" -gt 40 ] && echo 1)"
LEAKS=$(cat "$PORT_FILE.log" "$WORK/second.log" | grep -c -F -f "$WORK/tokens.uniq")
check "server log contains no token value" 0 "$LEAKS"

echo "# stopping"
PID="$(cat "$PORT_FILE.pid")"
"$DIR/stop.sh" "$PORT_FILE.pid"
check "stop.sh: process gone" 1 "$(kill -0 "$PID" 2>/dev/null || echo 1)"
check "stop.sh: pid file removed" 1 "$([ ! -f "$PORT_FILE.pid" ] && echo 1)"

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
