#!/bin/bash
# The demo, both modes, on short frames: it must end cleanly, show identical
# final keys (digest per key id) for the 3% frames and no key for the 14%
# ones, print the secret fraction against the bound, and never print more
# than a 16-hex-digit digest prefix (no key material).
cd "$(dirname "$0")/../.." || exit 1
build=${QKD_BUILD:-build}
n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
nok() { n=$((n + 1)); fail=1; echo "not ok $n $1"; }
check() { if eval "$2"; then ok "$1"; else nok "$1"; fi; }

echo "TAP version 13"
echo "1..8"
out=$(timeout 120 scripts/demo --build "$build" --frames 3 --slots 2097152 2>&1)
st=$?
echo "$out" | sed 's/^/# /'
check "full demo exits 0" '[ $st = 0 ]'
check "three 3% frames with identical keys" \
	'[ "$(echo "$out" | grep -c " identical$")" = 3 ]'
check "two 14% frames yield nothing on both sides" \
	'[ "$(echo "$out" | grep -c "no key: qber (aborted on both sides)")" = 2 ]'
check "no frame differs" '! echo "$out" | grep -qE "DIFFER|DISAGREE"'
check "secret fraction next to the asymptotic bound" \
	'echo "$out" | grep -q "secret fraction r = 0\.[0-9]*," &&
	 echo "$out" | grep -q "asymptotic bound 1 - h(Q) - f h(Q) = 0\.[0-9]*"'
check "no hex run longer than a 16-digit digest prefix" \
	'! echo "$out" | grep -qE "[0-9a-f]{17,}"'

out=$(timeout 120 scripts/demo --short --build "$build" --frames 2 2>&1)
st=$?
echo "$out" | sed 's/^/# /'
check "short demo exits 0" '[ $st = 0 ]'
check "short demo: 2 keyed and 3 aborted frames" \
	'[ "$(echo "$out" | grep -c "  key$")" = 2 ] &&
	 [ "$(echo "$out" | grep -c "  aborted$")" = 3 ]'
exit $fail
