#!/bin/bash
# bench-pipeline: end-to-end sifted-key throughput of the whole distillation
# pipeline, Alice and Bob as real processes on this machine:
#   source | qkd-sift | qkd-estimate | qkd-cascade | qkd-confirm | qkd-pa | qkd-auth
# for each side, every stage pair on its own authenticated loopback channel.
#
# The raw detection frames (QBER 2%) are simulated once beforehand and read
# from files by qkd-cat, so that the measurement is the post-processing, not the
# simulated optics; a third run with qkd-sim live as the source shows what the
# simulator costs on the same cores, and a fourth forces the read/write
# fallback instead of io_uring on every pipe, and a fifth runs the source and
# qkd-sift in --lanes parallel lanes (--instance I/N, frame k in lane k mod N;
# qkd-estimate merges them), since sifting alternates between Bob and Alice
# one frame at a time. The baseline, measured in the same run, is the
# transport ceiling: the same pipeline with qkd-cat in place of each of the
# six distillation stages (same processes, pipes and frames, no work).
#
# Printed: wall time and sifted-key Mbit/s of each run (best of --repeat),
# the ratios to the ceiling and of io_uring to the fallback, the final key
# and secret fraction, and the CPU time of every stage (user + system, both
# sides, from the stage's own rusage) with its share of the pipeline's CPU.
#
# Usage: bench/bench-pipeline.sh [--frames N] [--slots N] [--repeat N]
#                                [--lanes N] [--build DIR] [--keep]
#   defaults: 40 frames of 2097152 slots (about 230 000 sifted bits, a
#   2^18-bit block after estimation, 9 Mbit sifted in all), best of 3,
#   2 lanes (1: no lanes run).
set -u
cd "$(dirname "$0")/.." || exit 1
build=${QKD_BUILD:-build}
frames=40 slots=2097152 repeat=3 keep=0 lanes=2
while [ $# -gt 0 ]; do
	case $1 in
	--frames) frames=$2; shift ;;
	--slots) slots=$2; shift ;;
	--repeat) repeat=$2; shift ;;
	--lanes) lanes=$2; shift ;;
	--build) build=$2; shift ;;
	--keep) keep=1 ;;
	-h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-pipeline: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
. scripts/lib/pipeline.sh
QKD_BIN=$build/bin
for b in qkd-sim qkd-cat $(printf 'qkd-%s ' $QKD_STAGES); do
	[ -x "$QKD_BIN/$b" ] && continue
	echo "bench-pipeline: $QKD_BIN/$b missing; run make" >&2
	exit 1
done
full_stages=$QKD_STAGES
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
work=$(mktemp -d "$base/qkd-bench-pipeline.XXXXXX")
cleanup() {
	if [ "$keep" = 1 ]; then echo "bench-pipeline: files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The link: no fibre, transmittance 0.5, mu 0.5: about 11% of the pulses give
# a sifted bit. QBER 2%.
sim="--slots $slots --distance 0 --efficiency 0.5 --qber 0.02 --frames $frames"
seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
"$QKD_BIN/qkd-sim" --seed "$seed" $sim --alice-out "$work/raw.alice" \
	--bob-out "$work/raw.bob" --truth "$work/truth" --log-level warning || exit 1
sifted=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^sifted=/) s += substr($i, 8) }
	END { printf "%d", s }' "$work/truth")

from_files() { "$QKD_BIN/qkd-cat" "$work/raw.$1"; }
# lane I of N: the frames with key id = I mod N, simulated apart beforehand
from_lane_files() { "$QKD_BIN/qkd-cat" "$work/raw.$1.${2%/*}"; }
from_sim() { "$QKD_BIN/qkd-sim" --role "$1" --seed "$seed" $sim --log-level warning; }

# run NAME STAGES SOURCE: best wall time of $repeat runs in $work/NAME.best,
# that run's files in $work/NAME/.
run() {
	local name=$1 stages=$2 src=$3 r d s e t best=
	for ((r = 0; r < repeat; r++)); do
		d=$work/$name.$r
		mkdir -p "$d"
		qkd_pools "$d"
		QKD_STAGES=$stages QKD_TIMES=1 QKD_PORT=$((20000 + RANDOM % 12000))
		eval "qkd_source() { $src \"\$1\" \"\${3:-0/1}\"; }"
		s=$(date +%s%N)
		if ! qkd_pair "$d"; then
			# reported, and the run does not count; the files stay
			echo "bench-pipeline: $name, run $r: a stage failed (files in $d):" >&2
			grep -H . "$d"/*.log | head -n 8 >&2
			keep=1
			mv "$d" "$d.failed"
			continue
		fi
		e=$(date +%s%N)
		t=$(((e - s) / 1000))
		echo "$t" > "$d/wall_us"
		if [ -z "$best" ] || [ "$t" -lt "$best" ]; then
			best=$t
			rm -rf "${work:?}/$name"
			mv "$d" "$work/$name"
		else
			rm -rf "$d"
		fi
	done
	[ -n "$best" ] || return 1
	echo "$best" > "$work/$name.best"
}

load0=$(cut -d' ' -f1 /proc/loadavg)
run ceiling "cat cat cat cat cat cat" from_files || exit 1
run full "$full_stages" from_files || exit 1
run live "$full_stages" from_sim || exit 1
export QKD_TRANSPORT=fallback
run fallback "$full_stages" from_files || exit 1
unset QKD_TRANSPORT
if [ "$lanes" -gt 1 ]; then
	# the same frames, split by key id into one file per lane
	for ((l = 0; l < lanes; l++)); do
		"$QKD_BIN/qkd-sim" --seed "$seed" $sim --instance "$l/$lanes" \
			--alice-out "$work/raw.alice.$l" --bob-out "$work/raw.bob.$l" \
			--log-level warning || exit 1
	done
	QKD_LANES=$lanes
	run lanes "$full_stages" from_lane_files || exit 1
	QKD_LANES=1
fi

# Alice's and Bob's final keys must be the same, key id by key id.
qkd_key_digests "$work/full/alice.keys" > "$work/alice.digests"
qkd_key_digests "$work/full/bob.keys" > "$work/bob.digests"
if ! cmp -s "$work/alice.digests" "$work/bob.digests"; then
	echo "bench-pipeline: Alice's and Bob's final keys differ!" >&2
	exit 1
fi
keys=$(awk '$2 == 7 { n++; b += $3 } END { printf "%d %d", n, b }' "$work/alice.digests")
nkeys=${keys% *} keybits=${keys#* }

mbps() { awk -v b="$1" -v us="$2" 'BEGIN { printf "%.1f", b / us }'; }
secs() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1e6 }'; }
ceil_us=$(cat "$work/ceiling.best") full_us=$(cat "$work/full.best")
live_us=$(cat "$work/live.best") fb_us=$(cat "$work/fallback.best")
raw_mb=$(awk -v f="$frames" -v s="$slots" 'BEGIN { printf "%.0f", f * s / 1e6 }')

load1=$(cut -d' ' -f1 /proc/loadavg)
echo "Alice and Bob on $(nproc) cores (load average $load0 before, $load1 after:"
echo "other jobs share the cores), QBER 2%: $frames frames of $slots slots,"
echo "$sifted sifted bits ($raw_mb MB of raw frames per side); best of $repeat runs each"
printf '  %-44s %8s s  %8s Mbit/s sifted\n' "transport ceiling (6 x qkd-cat per side)" \
	"$(secs "$ceil_us")" "$(mbps "$sifted" "$ceil_us")"
printf '  %-44s %8s s  %8s Mbit/s sifted  (target >= 10)\n' \
	"distillation, raw frames from files" "$(secs "$full_us")" "$(mbps "$sifted" "$full_us")"
printf '  %-44s %8s s  %8s Mbit/s sifted\n' "distillation, qkd-sim live as the source" \
	"$(secs "$live_us")" "$(mbps "$sifted" "$live_us")"
printf '  %-44s %8s s  %8s Mbit/s sifted\n' "distillation, files, read/write fallback" \
	"$(secs "$fb_us")" "$(mbps "$sifted" "$fb_us")"
if [ "$lanes" -gt 1 ]; then
	lanes_us=$(cat "$work/lanes.best")
	printf '  %-44s %8s s  %8s Mbit/s sifted\n' "distillation, files, qkd-sift in $lanes lanes" \
		"$(secs "$lanes_us")" "$(mbps "$sifted" "$lanes_us")"
fi
awk -v c="$ceil_us" -v f="$full_us" -v b="$fb_us" 'BEGIN {
	printf "  distillation reaches %.2f of the transport ceiling'"'"'s rate;", c / f
	printf " io_uring / fallback: %.2f\n", b / f }'
echo "  final keys: $nkeys of $frames frames, $keybits bits, identical on both sides" \
	"(secret fraction of the sifted key" \
	"$(awk -v k="$keybits" -v s="$sifted" 'BEGIN { printf "%.3f", k / s }'))"

echo
echo "CPU time per stage, distillation run from files (user + system, seconds):"
printf '  %-10s %8s %8s %8s %7s %12s\n' stage Alice Bob both share "Mbit/s/core"
total=0
for st in sim $full_stages; do
	a=$(qkd_cpu "$work/full" alice "$st") b=$(qkd_cpu "$work/full" bob "$st")
	total=$(awk -v t="$total" -v a="$a" -v b="$b" 'BEGIN { print t + a + b }')
done
for st in sim $full_stages; do
	a=$(qkd_cpu "$work/full" alice "$st") b=$(qkd_cpu "$work/full" bob "$st")
	name=$st
	[ "$st" = sim ] && name="source"
	awk -v n="$name" -v a="$a" -v b="$b" -v t="$total" -v s="$sifted" 'BEGIN {
		both = a + b
		printf "  %-10s %8.3f %8.3f %8.3f %6.1f%% %12s\n", n, a, b, both,
			100 * both / t, (both > 0 ? sprintf("%.0f", s / 1e6 / (both / 2)) : "-") }'
done
awk -v t="$total" -v us="$full_us" -v c="$(nproc)" -v s="$sifted" 'BEGIN {
	printf "  %-10s %26.3f s of CPU in %.3f s: %.2f cores busy on average\n",
		"total", t, us / 1e6, t / (us / 1e6)
	printf "  CPU-bound rate: %.1f Mbit/s sifted if the pipeline had the %d cores to itself\n",
		s / 1e6 / (t / c), c
	printf "  (sifted bits / (CPU seconds of both sides / cores): an estimate,"
	printf " not a measurement)\n" }'
echo "  (source: qkd-cat reading the raw frames; Mbit/s/core: sifted bits per"
echo "  CPU second of one side's instance of the stage)"
