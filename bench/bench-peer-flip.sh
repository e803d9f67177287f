#!/bin/bash
# bench-peer-flip: what one corrupted byte or one dropped connection on a
# stage's peer channel costs (issue 14). Both sides run the whole pipeline
# (scripts/lib/pipeline.sh) on --frames frames; one stage's connection goes
# through build/bench/flip-relay, which flips the lowest bit of one byte at a
# random offset of one direction's stream (handshake, headers, length fields,
# bodies, tags alike) or, every --cut-every trials, closes the connection at
# that offset instead. A clean run first measures each stream's length and
# the blocks that yield a key without a man in the middle (the baseline).
#
# Per trial: blocks lost = baseline keys - keys identical on both sides;
# differing keys (both sides keyed, keys differ) and one-sided keys must be 0.
# Printed: the distribution of blocks lost per trial, by stage and direction,
# by the field that was hit, and the totals.
#
# Usage: bench/bench-peer-flip.sh [--trials N] [--frames N] [--slots N]
#                                 [--stages "sift ..."] [--cut-every N]
#                                 [--peer-timeout MS] [--build DIR] [--keep]
#   defaults: 1000 trials, 12 frames of 524288 slots, all six stages, a cut
#   every 5th trial, --peer-timeout 5000 (a trial takes 2-4 s on this
#   2-core machine: 1000 trials about an hour; --trials 50 for a look).
set -u
cd "$(dirname "$0")/.." || exit 1
build=${QKD_BUILD:-build}
trials=1000 frames=12 slots=524288 cut_every=5 ptmo=5000 keep=0
stages="sift estimate cascade confirm pa auth"
while [ $# -gt 0 ]; do
	case $1 in
	--trials) trials=$2; shift ;;
	--frames) frames=$2; shift ;;
	--slots) slots=$2; shift ;;
	--stages) stages=$2; shift ;;
	--cut-every) cut_every=$2; shift ;;
	--peer-timeout) ptmo=$2; shift ;;
	--build) build=$2; shift ;;
	--keep) keep=1 ;;
	-h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-peer-flip: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
relay=$build/bench/flip-relay
[ -x "$relay" ] || { echo "bench-peer-flip: $relay missing; run make" >&2; exit 1; }
. scripts/lib/pipeline.sh
QKD_BIN=$build/bin
QKD_QBERS="0.03*$frames"
QKD_COMMON="--log-level warning --peer-timeout $ptmo"
work=$(mktemp -d "${TMPDIR:-/tmp}/qkd-bench-peer-flip.XXXXXX")
cleanup() {
	if [ "$keep" = 1 ]; then echo "bench-peer-flip: files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
read -r -a st_list <<< "$stages"
QKD_STAGES=$stages

# pair DIR STAGE DIR OFF [--cut]: one run, STAGE's channel through the relay;
# the relay's line in DIR/relay.out. Returns qkd_pair's status.
pair() {
	local dir=$1 stage=$2 d=$3 off=$4 cut=${5:-} rp rc var
	rm -rf "$dir"
	mkdir -p "$dir"
	QKD_PORT=$((20000 + RANDOM % 11000))
	rp=$((QKD_PORT + 10))
	var=QKD_PEER_$stage
	qkd_pools "$dir" 1048576
	local i=0 s idx=0
	for s in $QKD_STAGES; do
		[ "$s" = "$stage" ] && idx=$i
		i=$((i + 1))
	done
	# shellcheck disable=SC2086 # $cut is empty or one word
	"$relay" "$rp" $((QKD_PORT + idx)) "$d" "$off" $cut > "$dir/relay.out" &
	local rpid=$!
	(
		export "$var=127.0.0.1:$rp"
		timeout 120 bash -c ". scripts/lib/pipeline.sh; QKD_BIN='$QKD_BIN'
			QKD_PORT=$QKD_PORT QKD_STAGES='$QKD_STAGES' QKD_QBERS='$QKD_QBERS'
			QKD_SIM_ARGS='--slots $slots --distance 0 --efficiency 0.5 --seed $seed'
			QKD_COMMON='$QKD_COMMON' qkd_pair '$dir'"
	)
	rc=$?
	wait "$rpid"
	echo "$?" > "$dir/relay.rc"
	for s in alice bob; do
		if [ -s "$dir/$s.keys" ]; then
			qkd_key_digests "$dir/$s.keys" > "$dir/$s.dig"
		else
			: > "$dir/$s.dig"
		fi
	done
	return "$rc"
}

# outcome DIR: "identical differing onesided" over the key ids of both sides
outcome() {
	join -a1 -a2 -e none -o 0,1.2,1.4,2.2,2.4 <(sort -k1,1 "$1/alice.dig") \
		<(sort -k1,1 "$1/bob.dig") | awk '
		{ ka = ($3 != "-" && $3 != "none"); kb = ($5 != "-" && $5 != "none")
		  if (ka && kb && $3 == $5) same++
		  else if (ka && kb) diff++
		  else if (ka || kb) one++ }
		END { printf "%d %d %d\n", same, diff, one }'
}

seed=$((RANDOM * 32768 + RANDOM))
declare -A total
# the clean run: one relay that never flips on each stage in turn gives
# every stream's length (one run per stage; the relay sits on one channel)
for s in "${st_list[@]}"; do
	pair "$work/clean" "$s" 0 999999999999
	read -r w tot0 tot1 < "$work/clean/relay.out"
	[ "$w" = miss ] || { echo "bench-peer-flip: clean run: relay said '$w'" >&2; exit 1; }
	total[$s,0]=$tot0
	total[$s,1]=$tot1
	read -r base d1 o1 <<< "$(outcome "$work/clean")"
	echo "clean run through $s: $base of $frames blocks keyed alike, $d1 differing," \
		"$o1 one-sided; stream bytes Alice->Bob $tot0, Bob->Alice $tot1"
done
[ "$base" -gt 0 ] || { echo "bench-peer-flip: no key without a flip" >&2; exit 1; }

declare -A lost_hist by_sd by_field
sum_diff=0 sum_one=0 sum_lost=0 max_lost=0 n=0 stage_fail=0 start=$SECONDS
for ((t = 0; t < trials; t++)); do
	s=${st_list[$((RANDOM % ${#st_list[@]}))]}
	d=$((RANDOM % 2))
	off=$(((RANDOM * 32768 + RANDOM) % ${total[$s,$d]}))
	cut=
	kind="flip"
	if [ "$cut_every" -gt 0 ] && [ $((t % cut_every)) = $((cut_every - 1)) ]; then
		cut=--cut
		kind="cut"
	fi
	pair "$work/t" "$s" "$d" "$off" $cut
	prc=$?
	[ "$prc" = 0 ] || stage_fail=$((stage_fail + 1))
	read -r same diff one <<< "$(outcome "$work/t")"
	lost=$((base - same))
	[ "$lost" -lt 0 ] && lost=0
	f=$(awk '{ print $1 == "hit" ? $2 : "miss" }' "$work/t/relay.out")
	f=${f%%+*}
	lost_hist[$lost]=$((${lost_hist[$lost]:-0} + 1))
	by_sd[$s:$d:$kind]="${by_sd[$s:$d:$kind]:-} $lost"
	by_field[$kind:$f]="${by_field[$kind:$f]:-} $lost"
	sum_diff=$((sum_diff + diff))
	sum_one=$((sum_one + one))
	sum_lost=$((sum_lost + lost))
	[ "$lost" -gt "$max_lost" ] && max_lost=$lost
	n=$((n + 1))
	echo "trial $t $s $d $kind $off $f: lost $lost, identical $same, differing $diff," \
		"one-sided $one, pipeline status $prc"
	if [ "$diff" != 0 ] || [ "$one" != 0 ]; then
		echo "TRIAL $t: $s dir $d offset $off $kind ($f): $diff DIFFERING, $one ONE-SIDED" >&2
		cp -r "$work/t" "$work/bad.$t"
		keep=1
	fi
done
el=$((SECONDS - start))

summ() { # list of losses -> "n trials, mean, max, share losing > 1"
	echo "$@" | tr ' ' '\n' | awk 'NF { n++; s += $1; if ($1 > m) m = $1; if ($1 > 1) b++ }
		END { printf "%4d trials, %5.2f blocks lost on average, max %2d, %3d lost > 1\n",
		      n, s / n, m, b }'
}
echo
echo "$n trials ($frames frames each, baseline $base keyed) in $el s," \
	"$(awk -v t="$el" -v n="$n" 'BEGIN { printf "%.2f", t / n }') s a trial"
echo "blocks lost per trial:"
for k in $(printf '%s\n' "${!lost_hist[@]}" | sort -n); do
	printf '  %2d lost: %5d trials\n' "$k" "${lost_hist[$k]}"
done
echo "by stage, direction (0 Alice->Bob, 1 Bob->Alice) and fault:"
for k in $(printf '%s\n' "${!by_sd[@]}" | sort); do
	printf '  %-22s %s\n' "$k" "$(summ "${by_sd[$k]}")"
done
echo "by the field the byte was in:"
for k in $(printf '%s\n' "${!by_field[@]}" | sort); do
	printf '  %-22s %s\n' "$k" "$(summ "${by_field[$k]}")"
done
echo "total: $sum_lost blocks lost in $n trials ($(awk -v l="$sum_lost" -v n="$n" \
	'BEGIN { printf "%.2f", l / n }') a trial, max $max_lost);" \
	"$sum_diff differing keys, $sum_one one-sided keys;" \
	"$stage_fail trials with a stage that did not end cleanly"
[ "$sum_diff" = 0 ] && [ "$sum_one" = 0 ]
