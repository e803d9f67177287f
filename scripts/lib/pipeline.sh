# qkdpipe: shell helpers to run one side (Alice or Bob) of a distillation
# pipeline as real processes joined by pipes, each stage with its own peer
# channel to the same stage of the other side. Sourced by scripts/demo,
# bench/bench-pipeline.sh and the distillation tests (bash only).
#
#   . scripts/lib/pipeline.sh
#   qkd_pools DIR [BYTES]        identical fresh pre-shared key pools
#                                DIR/alice.pool, DIR/bob.pool (+ .spent)
#   qkd_side bob DIR &           Bob's chain, final frames in DIR/bob.keys
#   qkd_side alice DIR           Alice's chain, DIR/alice.keys
#   qkd_pair DIR                 both of the above; 0 if both ended cleanly
#   qkd_side_ok DIR ROLE         0 if every stage of that side exited 0
#   qkd_key_digests FILE         "key_id state bits sha256-of-payload" per frame
#
# Settings (shell variables, read when qkd_side runs):
#   QKD_BIN        directory of the executables (default build/bin)
#   QKD_STAGES     distillation stages after the source, in order
#                  (default: sift estimate cascade confirm pa auth)
#   QKD_HOST       address Bob listens on and Alice connects to (127.0.0.1)
#   QKD_PORT       port of the first stage; stage i uses QKD_PORT + i
#   QKD_SIM_ARGS   arguments of qkd-sim besides --role (seed, frames, qber...)
#   QKD_COMMON     arguments given to every stage with a peer channel
#                  (default: --log-level warning)
#   QKD_ARGS_<stage>   extra arguments of one stage, e.g. QKD_ARGS_cascade
#   QKD_PEER_<stage>   HOST:PORT Alice connects to for that stage instead
#                  (a man in the middle in the tests)
#   QKD_TAPS       stages after which Alice's frames are tapped with
#                  qkd-stats --pass; per-frame lines in DIR/alice.STAGE.stats
#   QKD_TIMES      when 1, each stage's CPU time (user, sys in clock ticks of
#                  the process and its children) goes to DIR/ROLE.STAGE.cpu
#
#   QKD_QBERS      optional list "Q[*N] ...": the source runs qkd-sim once per
#                  entry, N frames (default 1) at QBER Q each, key ids counting
#                  on; QKD_SIM_ARGS apply to every run (the same --seed on both
#                  sides gives the two halves of one link)
#   QKD_TRUTH      file for qkd-sim's per-frame ground truth (Alice's source)
#                  (of lane 0 only when there are lanes)
#   QKD_LANES      N > 1: the source and the leading stages listed in
#                  QKD_LANE_STAGES (default "sift") run as N parallel lanes,
#                  lane I with --instance I/N (frame k in lane k mod N) and its
#                  own peer channels on ports QKD_PORT + 8 I + i; the next stage
#                  merges the lanes back into key-id order (--in per lane)
#
# qkd_source ROLE DIR [I/N] writes the raw frames of one side (of lane I of N)
# to stdout (qkd-sim as described above). Callers may redefine it after
# sourcing.
#
# Each stage writes its stderr to DIR/ROLE.STAGE.log and its exit status to
# DIR/ROLE.STAGE.rc (DIR/ROLE.STAGE@I.* for lane I). A stage named "cat" is
# qkd-cat (no peer channel): the transport ceiling of the benchmark.

QKD_BIN=${QKD_BIN:-build/bin}
QKD_STAGES=${QKD_STAGES:-sift estimate cascade confirm pa auth}
QKD_HOST=${QKD_HOST:-127.0.0.1}
# below the ephemeral ports (32768-60999) so a listen never meets a connection
QKD_PORT=${QKD_PORT:-$((20000 + RANDOM % 12000))}
QKD_SIM_ARGS=${QKD_SIM_ARGS:-}
QKD_COMMON=${QKD_COMMON:---log-level warning}
QKD_TAPS=${QKD_TAPS:-}
QKD_TIMES=${QKD_TIMES:-0}
QKD_QBERS=${QKD_QBERS:-}
QKD_TRUTH=${QKD_TRUTH:-}
QKD_LANES=${QKD_LANES:-1}
QKD_LANE_STAGES=${QKD_LANE_STAGES:-sift}

# The stages that are followed by another peer stage fold their transcripts
# into each frame (defer-auth) for qkd-auth to close; without qkd-auth in the
# chain every stage verifies its own tags.
qkd_defer_auth() {
	case " $QKD_STAGES " in *" auth "*) echo true ;; *) echo false ;; esac
}

qkd_pools() {
	local dir=$1 bytes=${2:-1048576}
	head -c "$bytes" /dev/urandom > "$dir/alice.pool" || return 1
	cp "$dir/alice.pool" "$dir/bob.pool"
	printf 'QKDSPNT1\0\0\0\0\0\0\0\0' > "$dir/alice.pool.spent"
	cp "$dir/alice.pool.spent" "$dir/bob.pool.spent"
	chmod 600 "$dir"/alice.pool* "$dir"/bob.pool*
}

qkd_source() {
	local role=$1 lane=${3:-0/1} k=0 q n truth='' inst=''
	[ "$lane" != 0/1 ] && inst="--instance $lane"
	# one truth file: lane 0 only (qkd-sim truncates it)
	[ "$role" = alice ] && [ -n "$QKD_TRUTH" ] && [ "${lane%/*}" = 0 ] &&
		truth="--truth $QKD_TRUTH"
	if [ -z "$QKD_QBERS" ]; then
		# shellcheck disable=SC2086
		"$QKD_BIN/qkd-sim" --role "$role" --log-level warning $truth $inst $QKD_SIM_ARGS
		return
	fi
	# qkd-sim truncates its truth file (it appends only when resuming from
	# a state file): one part per run, appended here.
	[ -n "$truth" ] && { : > "$QKD_TRUTH"; truth="--truth $QKD_TRUTH.part"; }
	for q in $QKD_QBERS; do
		n=1
		case $q in *'*'*) n=${q#*\*}; q=${q%\**} ;; esac
		# shellcheck disable=SC2086
		"$QKD_BIN/qkd-sim" --role "$role" --log-level warning $truth $inst \
			$QKD_SIM_ARGS --first-key-id "$k" --frames "$n" --qber "$q" || return 1
		[ -n "$truth" ] && cat "$QKD_TRUTH.part" >> "$QKD_TRUTH"
		k=$((k + n))
	done
	[ -n "$truth" ] && rm -f "$QKD_TRUTH.part"
	return 0
}

# qkd_pair DIR: both sides, Bob in the background; 0 when both ended cleanly.
qkd_pair() {
	local dir=$1 bob a b
	qkd_side bob "$dir" &
	bob=$!
	qkd_side alice "$dir"
	a=$?
	wait "$bob"
	b=$?
	[ "$a" = 0 ] && [ "$b" = 0 ]
}

# _qkd_run BASE CMD...: one pipeline element. The command runs as a child of
# this subshell, so its exit status and, after it was reaped, its CPU time
# (the children's line of `times`) can be recorded.
_qkd_run() {
	local base=$1 rc
	shift
	"$@" 2> "$base.log"
	rc=$?
	echo "$rc" > "$base.rc"
	if [ "$QKD_TIMES" = 1 ]; then
		# children's user and system time, e.g. "0m1.250s 0m0.031s"
		# (times must run in this shell, not in a command substitution)
		times > "$base.cpu"
	fi
	return "$rc"
}

# _qkd_stage_cmd ROLE DIR I NAME [LANE/N]: the command line of stage NAME
# (index I), or of its instance in lane LANE of N.
_qkd_stage_cmd() {
	local role=$1 dir=$2 name=$4 lane=${5:-0/1} port addr extra over inst=
	port=$((QKD_PORT + $3 + 8 * ${lane%/*}))
	[ "$lane" != 0/1 ] && inst="--instance $lane"
	if [ "$name" = cat ]; then
		echo "$QKD_BIN/qkd-cat"
		return
	fi
	if [ "$role" = bob ]; then
		addr="--listen $QKD_HOST:$port"
	else
		over="QKD_PEER_$name"
		addr="--peer ${!over:-$QKD_HOST:$port}"
	fi
	extra="QKD_ARGS_$name"
	if [ "$name" != auth ]; then
		extra="--defer-auth $(qkd_defer_auth) ${!extra:-}"
	else
		extra="${!extra:-}"
	fi
	echo "$QKD_BIN/qkd-$name --role $role $addr $inst --keypool $dir/$role.pool" \
		"$QKD_COMMON $extra"
}

# qkd_side ROLE DIR: run ROLE's whole chain in the foreground; final frames in
# DIR/ROLE.keys. Returns 0 when every stage exited 0.
qkd_side() {
	local role=$1 dir=$2 i=0 name chain cmd l merge='' pids=() rest=''
	rm -f "$dir/$role".*.rc
	if [ "$QKD_LANES" -gt 1 ]; then
		# the leading lane stages, N times, each lane into a FIFO
		for name in $QKD_STAGES; do
			case " $QKD_LANE_STAGES " in
			*" $name "*) [ -z "$rest" ] && { i=$((i + 1)); continue; } ;;
			esac
			rest="$rest $name"
		done
		for ((l = 0; l < QKD_LANES; l++)); do
			rm -f "$dir/$role.lane$l"
			mkfifo "$dir/$role.lane$l" || return 1
			chain="_qkd_run $dir/$role.sim@$l qkd_source $role $dir $l/$QKD_LANES"
			i=0
			for name in $QKD_STAGES; do
				case " $rest " in *" $name "*) break ;; esac
				cmd=$(_qkd_stage_cmd "$role" "$dir" "$i" "$name" "$l/$QKD_LANES")
				chain="$chain | _qkd_run $dir/$role.$name@$l $cmd"
				i=$((i + 1))
			done
			eval "$chain > $dir/$role.lane$l &"
			pids+=($!)
			merge="$merge --in $dir/$role.lane$l"
		done
		chain=
	else
		rest=$QKD_STAGES
		chain="_qkd_run $dir/$role.sim qkd_source $role $dir"
	fi
	for name in $rest; do
		cmd=$(_qkd_stage_cmd "$role" "$dir" "$i" "$name")
		if [ -z "$chain" ]; then
			chain="_qkd_run $dir/$role.$name $cmd $merge"
		else
			chain="$chain | _qkd_run $dir/$role.$name $cmd"
		fi
		case " $QKD_TAPS " in
		*" $name "*)
			[ "$role" = alice ] &&
				chain="$chain | $QKD_BIN/qkd-stats --pass 2> $dir/$role.$name.stats"
			;;
		esac
		i=$((i + 1))
	done
	eval "$chain > $dir/$role.keys"
	for l in "${pids[@]}"; do
		wait "$l"
	done
	rm -f "$dir/$role".lane*
	qkd_side_ok "$dir" "$role"
}

# _qkd_files DIR ROLE STAGE EXT: the stage's files (one per lane if in lanes).
_qkd_files() {
	local l
	if [ -e "$1/$2.$3@0.$4" ]; then
		for ((l = 0; l < QKD_LANES; l++)); do
			echo "$1/$2.$3@$l.$4"
		done
	else
		echo "$1/$2.$3.$4"
	fi
}

qkd_side_ok() {
	local dir=$1 role=$2 name rc f
	for name in sim $QKD_STAGES; do
		for f in $(_qkd_files "$dir" "$role" "$name" rc); do
			rc=$(cat "$f" 2>/dev/null) || rc=missing
			[ "$rc" = 0 ] || return 1
		done
	done
}

# qkd_cpu DIR ROLE STAGE: CPU seconds (user + system) the stage used (all its
# lanes together).
qkd_cpu() {
	# shellcheck disable=SC2046
	awk 'FNR == 2 { for (i = 1; i <= NF; i++) {
		       split($i, p, /[ms]/); t += p[1] * 60 + p[2]
	       } }
	     END { printf "%.3f\n", t }' $(_qkd_files "$1" "$2" "$3" cpu)
}

# qkd_frame_fields FILE: one line per frame, "offset key_id state bits qber_ppm
# disclosed abort payload_len" (header layout: Documentation/frame-format.md).
qkd_frame_fields() {
	local file=$1 size off=0 h
	size=$(stat -c %s "$file") || return 1
	while [ "$off" -lt "$size" ]; do
		read -ra h < <(od -An -v -t u1 -w96 -j "$off" -N 96 "$file")
		if [ "${#h[@]}" -ne 96 ]; then
			echo "qkd_frame_fields: $file: truncated frame at byte $off" >&2
			return 1
		fi
		local k=0 bits=0 disc=0 q=0 plen=0 j
		for ((j = 7; j >= 0; j--)); do
			k=$(((k << 8) | h[8 + j]))
			bits=$(((bits << 8) | h[16 + j]))
			disc=$(((disc << 8) | h[24 + j]))
		done
		for ((j = 3; j >= 0; j--)); do
			q=$(((q << 8) | h[40 + j]))
			plen=$(((plen << 8) | h[44 + j]))
		done
		echo "$off $k ${h[6]} $bits $q $disc ${h[52]} $plen"
		off=$((off + 96 + plen))
	done
}

# qkd_abort_name N: the name of abort reason N (enum qkd_abort_reason).
qkd_abort_name() {
	local names=(none qber auth ec confirm too-short peer)
	echo "${names[$1]:-reason-$1}"
}

# qkd_key_digests FILE: "key_id state bits digest abort" per frame; the digest
# is the SHA-256 of the frame's payload (the key), "-" for a frame without one;
# abort is the abort reason's name (none unless the frame is ABORTED).
qkd_key_digests() {
	local file=$1 off k st bits q disc ab plen d
	qkd_frame_fields "$file" | while read -r off k st bits q disc ab plen; do
		if [ "$plen" -gt 0 ]; then
			d=$(tail -c +$((off + 97)) "$file" | head -c "$plen" | sha256sum)
			d=${d%% *}
		else
			d=-
		fi
		echo "$k $st $bits $d $(qkd_abort_name "$ab")"
	done
}
