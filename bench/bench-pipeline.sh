#!/bin/bash
# End-to-end throughput of Alice's and Bob's qkd-sim -> qkd-sift -> qkd-estimate
# pipelines through real processes on loopback (pipes, authenticated peer
# channels with a tag exchange per frame and stage), over io_uring and over the
# read/write fallback. Prints raw slots/s, sifted and estimated key bits/s and
# frames/s, and the io_uring/fallback ratio.
# Usage: bench/bench-pipeline.sh [FRAMES [SLOTS]]   (default 40 x 1000000)
set -eu
cd "$(dirname "$0")/.."
bin=$(realpath "${QKD_BUILD:-build}")/bin
frames=${1:-40} slots=${2:-1000000}
work=$(mktemp -d /tmp/qkd-bench-pipe.XXXXXX)
trap 'rm -rf "$work"' EXIT
head -c 4194304 /dev/urandom > "$work/pool"
printf 'QKDSPNT1\0\0\0\0\0\0\0\0' > "$work/pool.spent"

run() { # transport -> "seconds sifted_bits estimated_bits"
	local t=$1 p=$((20000 + RANDOM % 20000)) start end bobpid
	for s in a b; do cp "$work/pool" "$work/$s.pool"; cp "$work/pool.spent" "$work/$s.pool.spent"; done
	start=$(date +%s.%N)
	QKD_TRANSPORT=$t "$bin/qkd-sim" --role bob --seed 1 --frames "$frames" --slots "$slots" \
		--log-level warning |
	QKD_TRANSPORT=$t "$bin/qkd-sift" --role bob --listen "127.0.0.1:$p" --keypool "$work/b.pool" \
		2>"$work/sift-b.log" |
	QKD_TRANSPORT=$t "$bin/qkd-estimate" --role bob --listen "127.0.0.1:$((p + 1))" \
		--keypool "$work/b.pool" > /dev/null 2>"$work/est-b.log" &
	bobpid=$!
	QKD_TRANSPORT=$t "$bin/qkd-sim" --role alice --seed 1 --frames "$frames" --slots "$slots" \
		--log-level warning |
	QKD_TRANSPORT=$t "$bin/qkd-sift" --role alice --peer "127.0.0.1:$p" --keypool "$work/a.pool" \
		2>"$work/sift-a.log" |
	QKD_TRANSPORT=$t "$bin/qkd-estimate" --role alice --peer "127.0.0.1:$((p + 1))" \
		--keypool "$work/a.pool" > /dev/null 2>"$work/est-a.log"
	wait $bobpid
	end=$(date +%s.%N)
	echo "$(awk -v s="$start" -v e="$end" 'BEGIN{print e - s}')" \
	     "$(sed -n 's/.*exit: .* \([0-9]*\) out, [0-9]* disclosed.*/\1/p' "$work/sift-a.log")" \
	     "$(sed -n 's/.*exit: .* \([0-9]*\) out, [0-9]* disclosed.*/\1/p' "$work/est-a.log")"
}

read -r tu su eu < <(run uring)
read -r tf sf ef < <(run fallback)
awk -v f="$frames" -v s="$slots" -v tu="$tu" -v su="$su" -v eu="$eu" -v tf="$tf" 'BEGIN {
	printf "pipeline sim->sift->estimate, both sides, %d frames x %d slots\n", f, s
	printf "io_uring:  %6.2f s  %7.1f Mslots/s  %6.1f frames/s  sifted %6.3f Mbit/s  estimated %6.3f Mbit/s\n",
		tu, f * s / tu / 1e6, f / tu, su / tu / 1e6, eu / tu / 1e6
	printf "fallback:  %6.2f s  %7.1f Mslots/s  %6.1f frames/s\n", tf, f * s / tf / 1e6, f / tf
	printf "io_uring / fallback throughput ratio: %.2f\n", tf / tu
}'
