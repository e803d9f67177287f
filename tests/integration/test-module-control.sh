#!/bin/bash
# The module runtime under CoAP control (through the unmodified coap-client-notls):
# a running qkd-sim is paused (no frames while paused), resumed, has a live
# parameter changed (visible in its ground truth from the next frame), and is
# terminated, which saves its state file and exits 0 with every frame complete.
# Prints TAP. QKD_BUILD points at the build directory (default build).
set -u
cd "$(dirname "$0")/../.."
bin=$(realpath "${QKD_BUILD:-build}")/bin
tmp=$(mktemp -d /tmp/qkd-ctl.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
n=0 failed=0
check() { local name=$1; shift; n=$((n + 1)); if "$@"; then echo "ok $n $name"; else failed=1; echo "not ok $n $name"; fi; }
coap() { timeout 5 coap-client-notls -B 3 "$@" 2>/dev/null; }
frames_out() { coap -m get "coap://127.0.0.1:$port/stats" | sed -n 's/.*"frames_out":\([0-9]*\).*/\1/p'; }

if ! command -v coap-client-notls >/dev/null; then
	echo "ok 1 # SKIP coap-client-notls not installed"; echo "1..1"; exit 0
fi
# No QPM listens on port 9: registration keeps retrying, the service still serves.
"$bin/qkd-sim" --seed 3 --slots 2000 --rate 40 --qpm 127.0.0.1:9 --log-level debug \
	--truth "$tmp/truth" --state-file "$tmp/state" --out "$tmp/frames" 2>"$tmp/log" &
pid=$!
for _ in $(seq 50); do
	port=$(sed -n 's/.*CoAP service on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
	[ -n "$port" ] && break
	sleep 0.1
done
check "the CoAP service is up" [ -n "$port" ]
sleep 0.3
coap -m put -e paused "coap://127.0.0.1:$port/state" >/dev/null
sleep 0.2
a=$(frames_out); sleep 0.5; b=$(frames_out)
check "paused: no frames ($a then $b)" [ -n "$a" -a "$a" = "$b" ]
check "state reads paused" bash -c "timeout 5 coap-client-notls -m get coap://127.0.0.1:$port/state 2>/dev/null | grep -q paused"
coap -m put -e 0.07 "coap://127.0.0.1:$port/params/qber" >/dev/null
coap -m put -e running "coap://127.0.0.1:$port/state" >/dev/null
sleep 0.5
c=$(frames_out)
check "resumed: frames again ($b then $c)" [ -n "$c" ] && [ "$c" -gt "$b" ]
check "live parameter took effect" grep -q 'configured=0.070000' "$tmp/truth"
check "frames before the change kept the old value" grep -q 'configured=0.030000' "$tmp/truth"
coap -m put -e terminating "coap://127.0.0.1:$port/state" >/dev/null
wait "$pid"; st=$?; pid=
check "terminated over CoAP: exit status 0" [ "$st" -eq 0 ]
produced=$(sed -n 's/.*info: \([0-9]*\) frames produced.*/\1/p' "$tmp/log")
count=$("$bin/qkd-cat" --count "$tmp/frames" 2>&1 >/dev/null | sed -n 's/^qkd-cat: \([0-9]*\) frames.*/\1/p')
check "every frame complete ($count of $produced)" [ -n "$count" -a "$count" = "$produced" ]
check "state file saved with the next key id" grep -qx "next-key-id=$produced" "$tmp/state"
echo "1..$n"
exit $failed
