#!/bin/bash
# qkd-sim, qkd-sift, qkd-estimate as executables: --help and --version exit 0
# with every man-page section, usage errors exit 2 with a clear message,
# qkd-sim is reproducible from its seed and resumes from its state file
# exactly where it stopped, and SIGTERM leaves a stream of complete frames.
# Prints TAP. QKD_BUILD points at the build directory (default build).
set -u
cd "$(dirname "$0")/../.."
bin=$(realpath "${QKD_BUILD:-build}")/bin
tmp=$(mktemp -d /tmp/qkd-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
fail() { n=$((n + 1)); failed=1; echo "not ok $n $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }

for m in qkd-sim qkd-sift qkd-estimate; do
	out=$("$bin/$m" --help 2>&1); st=$?
	good=1
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS PARAMETERS "CONFIGURATION FILE" SIGNALS \
		 "EXIT STATUS" EXAMPLES "SEE ALSO"; do
		grep -qx "$s" <<<"$out" || { echo "# $m --help lacks $s"; good=0; }
	done
	check "$m --help exits 0 with every section" [ $st -eq 0 -a $good -eq 1 ]
	long=$(awk 'length > 79' <<<"$out")
	check "$m --help fits 79 columns" [ -z "$long" ]
	check "$m --version" bash -c "'$bin/$m' --version | grep -q '^$m (qkdpipe) '"
	err=$("$bin/$m" --no-such-option 2>&1 >/dev/null); st=$?
	check "$m rejects an unknown option with status 2" \
		[ $st -eq 2 -a -n "$(grep -F "unknown option '--no-such-option'" <<<"$err")" ]
done

err=$("$bin/qkd-sim" --slots 0 2>&1 >/dev/null); st=$?
check "qkd-sim --slots 0 is out of range" [ $st -eq 2 -a -n "$(grep -F 'out of range' <<<"$err")" ]
err=$("$bin/qkd-sift" --role alice --keypool x 2>&1 >/dev/null </dev/null); st=$?
check "qkd-sift without --peer/--listen says so" \
	[ $st -eq 2 -a -n "$(grep -F 'give exactly one of --peer' <<<"$err")" ]
err=$("$bin/qkd-estimate" --peer 127.0.0.1:1 --keypool x 2>&1 >/dev/null </dev/null); st=$?
check "qkd-estimate without --role says so" [ $st -eq 2 -a -n "$(grep -F -- '--role' <<<"$err")" ]
err=$("$bin/qkd-sift" --role bob --listen 127.0.0.1:1 --keypool "$tmp/none" 2>&1 </dev/null >/dev/null); st=$?
check "qkd-sift with a missing key pool names it" \
	[ $st -eq 2 -a -n "$(grep -F "cannot open key pool '$tmp/none'" <<<"$err")" ]

# Reproducible from the seed; resumed from the state file, byte for byte.
"$bin/qkd-sim" --seed 5 --frames 6 --slots 20000 --out "$tmp/ref" 2>/dev/null
"$bin/qkd-sim" --seed 5 --frames 6 --slots 20000 --out "$tmp/ref2" 2>/dev/null
check "qkd-sim is reproducible from its seed" cmp -s "$tmp/ref" "$tmp/ref2"
"$bin/qkd-sim" --seed 6 --frames 6 --slots 20000 --out "$tmp/other" 2>/dev/null
check "another seed gives other frames" bash -c "! cmp -s '$tmp/ref' '$tmp/other'"
"$bin/qkd-sim" --seed 5 --frames 2 --slots 20000 --state-file "$tmp/st" --out "$tmp/p1" 2>/dev/null
"$bin/qkd-sim" --frames 4 --slots 20000 --state-file "$tmp/st" --out "$tmp/p2" 2>/dev/null
cat "$tmp/p1" "$tmp/p2" > "$tmp/resumed"
check "qkd-sim resumed from its state file continues the same run" cmp -s "$tmp/ref" "$tmp/resumed"
check "the state file records the next key id" grep -qx 'next-key-id=6' "$tmp/st"
printf 'garbage\n' > "$tmp/bad"
err=$("$bin/qkd-sim" --frames 1 --state-file "$tmp/bad" --out /dev/null 2>&1); st=$?
check "a damaged state file is refused" [ $st -eq 2 -a -n "$(grep -F "state file '$tmp/bad'" <<<"$err")" ]

# SIGTERM: the stream ends with a complete frame and the exit status is 0.
"$bin/qkd-sim" --slots 100000 --rate 50 --out "$tmp/endless" 2>"$tmp/endless.log" &
pid=$!
# Signal once frames flow, whatever the machine's load.
for _ in $(seq 200); do [ -s "$tmp/endless" ] && break; sleep 0.1; done
sleep 0.2
kill -TERM $pid
wait $pid; st=$?
frames=$("$bin/qkd-cat" --count "$tmp/endless" 2>&1 >/dev/null | sed -n 's/^qkd-cat: \([0-9]*\) frames.*/\1/p')
produced=$(sed -n 's/.*info: \([0-9]*\) frames produced.*/\1/p' "$tmp/endless.log")
check "SIGTERM: qkd-sim exits 0" [ $st -eq 0 ]
check "SIGTERM: every produced frame is complete in the output ($frames of $produced)" \
	[ -n "$frames" -a "$frames" = "$produced" -a "${frames:-0}" -ge 1 ]

echo "1..$n"
exit $failed
