#!/bin/bash
# End to end, in the VM: QKD keys from the real distillation pipeline protect
# IPsec, both through in-kernel XFRM injection and as strongSwan PPKs (TAP).
#
#   scripts/vm-run tests/kernel/e2e-pipeline.sh
#
# 1. Two network namespaces, alice (10.77.0.1) and bob (10.77.0.2), joined by
#    a veth pair; the key store module loaded (vm-run does it; else
#    $QKD_MODULE is insmod'ed); a link "ab" in each namespace's store.
# 2. One qkd-sim feeds both sides through FIFOs; Alice's chain
#    sift..auth (scripts/lib/pipeline.sh) runs in netns alice, Bob's in netns
#    bob, every stage pair talking over its own authenticated TCP channel
#    across the veth, with a fresh pre-shared authentication key pool. At the
#    end of each chain qkd-ks-sink cuts every final key into 72-byte keys
#    (one ESP key+salt per direction) and pushes them into its namespace's
#    store. Checked: both pipelines delivered the same final keys (compared
#    inside the script), both stores hold the same key ids as cut by the
#    sink, and a key fetched from each store is the pipeline's (SHA-256).
# 3. ESP SAs bound to the link on both sides (qkdctl xfrm bind): ping passes,
#    `ip xfrm state` shows the same key on both sides and it is the
#    pipeline's key; rekeying on a packet budget changes SPI and key while a
#    ping keeps going; one side given a different key under the next key id:
#    the ping stops at the rekey into it (same id and SPI on both sides,
#    different keys in ip xfrm state); rebinding on the next common key:
#    traffic again.
# 4. strongSwan: a fresh pipeline key loaded with qkd-ppk into one charon per
#    namespace; IKEv2 with ppk_required = yes comes up and `swanctl
#    --list-sas` shows it with the PPK; the peer without the PPK is refused.
#
# Key material is never printed: keys are compared as hex strings or digests
# inside the script. Files go to /tmp only (the guest sees the host root
# read-only) and are removed at the end.
set -u
cd "$(dirname "$0")/../.."
top=$PWD
: "${QKD_BUILD:=$top/build}"
export QKD_BUILD
QKD_BIN=$QKD_BUILD/bin
QKDCTL=$QKD_BIN/qkdctl
PPK=$QKD_BIN/qkd-ppk
A_IP=10.77.0.1 B_IP=10.77.0.2
KEY_BYTES=72		# what one XFRM generation takes: 2 x (256-bit key + salt)
FRAMES=3		# ~1 KiB of final key each with the settings below
SLOTS=2097152
LINK=ab

# ---- one side of the pipeline, run in its namespace by the main script ------
# e2e-pipeline.sh --side ROLE DIR: the chain of scripts/lib/pipeline.sh with
# the simulator's output FIFO DIR/ROLE.raw as its source; its final frames go
# through the FIFO DIR/ROLE.keys to qkd-tee (a copy in DIR/ROLE.final for the
# digest checks) and qkd-ks-sink.
if [ "${1:-}" = --side ]; then
	role=$2 dir=$3
	. scripts/lib/pipeline.sh
	qkd_source() { cat "$2/$1.raw"; }
	(
		"$QKD_BIN/qkd-tee" "$dir/$role.final" <"$dir/$role.keys" 2>"$dir/$role.tee.log" |
			"$QKD_BIN/qkd-ks-sink" --link "$LINK" --key-bytes "$KEY_BYTES" \
				--log-level warning 2>"$dir/$role.sink.log"
		echo "${PIPESTATUS[0]} ${PIPESTATUS[1]}" >"$dir/$role.sink.rc"
	) &
	sink=$!
	qkd_side "$role" "$dir"
	rc=$?
	wait $sink
	[ "$rc" = 0 ] && [ "$(cat "$dir/$role.sink.rc")" = "0 0" ]
	exit
fi

W=$(mktemp -d /tmp/e2e-pipeline.XXXXXX)
SS_DIR=$W/ss
SS_NS_A=alice SS_NS_B=bob SS_IP_A=$A_IP SS_IP_B=$B_IP
SS_PPK=$PPK
. tests/kernel/e2e-strongswan-lib.sh	# TAP helpers ok/fail/check, charons
. scripts/lib/pipeline.sh		# qkd_pools
mkdir -p "$SS_DIR"

sides=
cleanup() {
	local p
	for p in $sides; do kill -TERM -- -"$p" 2>/dev/null; done
	ss_cleanup
	rm -rf "$W"
}
trap cleanup EXIT

ns_of() { [ "$1" = a ] && echo alice || echo bob; }
# nsenter only joins the network namespace: cheaper than ip netns exec (which
# also remounts /sys), and every process counts under TCG.
in_ns() { local s=$1; shift; nsenter --net=/run/netns/"$(ns_of "$s")" "$@"; }
ctl() { local s=$1; shift; in_ns "$s" "$QKDCTL" "$@"; }
ppk() { local s=$1; shift; in_ns "$s" "$PPK" -s "$SS_DIR/$s/charon.vici" "$@"; }
key_list() { ctl "$1" key list $LINK 2>/dev/null; }
lowest_key() { key_list "$1" | awk 'NR == 1 { print $1 }'; }
hex() { od -An -tx1 -v | tr -d ' \n'; }
sha() { local d; d=$(sha256sum); echo "${d%% *}"; }
field() { # field TEXT NAME: a value from the output of qkdctl xfrm show
	[[ $1 =~ \ $2\ ([0-9a-fx]+) ]] && echo "${BASH_REMATCH[1]}"
}
xshow() { ctl "$1" xfrm show $LINK; }
bail() { # the rest cannot run
	fail "$1"
	ss_dump_logs 2>/dev/null
	echo "1..$tap_n"
	exit 1
}
elapsed() { echo $(($(date +%s) - t0)); }
stamp() { echo "# [$(elapsed) s] $*"; }
t0=$(date +%s)

echo "TAP version 13"

# ---- 1. namespaces and stores -----------------------------------------------
if [ ! -d /sys/module/qkd_keystore ] && [ -n "${QKD_MODULE:-}" ]; then
	modprobe -q xfrm_algo
	insmod "$QKD_MODULE"
fi
for b in qkd-sim qkd-sift qkd-estimate qkd-cascade qkd-confirm qkd-pa qkd-auth qkd-tee \
	 qkd-ks-sink qkdctl qkd-ppk; do
	[ -x "$QKD_BIN/$b" ] || bail "$QKD_BIN/$b missing (run make)"
done
[ -d /sys/module/qkd_keystore ] && [ -x "$SS_CHARON" ] ||
	bail "qkd_keystore loaded and charon present"
# One modprobe for what would otherwise be autoloaded piecemeal (slow under
# TCG), including the templates of the ESP AEAD rfc4106(gcm(aes)).
modprobe -a veth esp4 xfrm_user gcm ctr ghash-generic ghash_clmulni_intel aesni_intel seqiv \
	2>/dev/null
# Namespaces left behind by an earlier test that died would be in the way.
ip netns del alice 2>/dev/null; ip netns del bob 2>/dev/null
ss_netns_up || bail "namespaces alice and bob joined by veth"
ok "namespaces alice ($A_IP) and bob ($B_IP) joined by veth"
ctl a link add $LINK low-watermark 0 && ctl b link add $LINK low-watermark 0 ||
	bail "link $LINK in both stores"
ok "link $LINK in both stores"

# ---- 2. the pipeline between the namespaces ---------------------------------
stamp "set up"
qkd_pools "$W" || bail "fresh pre-shared key pools"
mkfifo "$W/alice.raw" "$W/bob.raw" "$W/alice.keys" "$W/bob.keys"
export QKD_BIN LINK KEY_BYTES QKD_HOST=$B_IP QKD_PORT=$((20000 + RANDOM % 12000))
seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
echo "# pipeline: seed $seed, $FRAMES frames of $SLOTS slots, QBER 2%, port $QKD_PORT.."
tp=$(date +%s)
# Each side in a session of its own, so that a hung run can be stopped whole.
setsid ip netns exec bob bash "$top/tests/kernel/e2e-pipeline.sh" --side bob "$W" &
pid_b=$!
setsid ip netns exec alice bash "$top/tests/kernel/e2e-pipeline.sh" --side alice "$W" &
pid_a=$!
sides="$pid_a $pid_b"
"$QKD_BIN/qkd-sim" --seed "$seed" --slots $SLOTS --frames $FRAMES --first-key-id 1 \
	--qber 0.02 --log-level warning --alice-out "$W/alice.raw" --bob-out "$W/bob.raw" \
	2>"$W/sim.log" &
pid_s=$!
for _ in $(seq 1800); do
	kill -0 $pid_a 2>/dev/null || kill -0 $pid_b 2>/dev/null || break
	sleep 0.1
done
hung=0
if kill -0 $pid_a 2>/dev/null || kill -0 $pid_b 2>/dev/null; then
	hung=1
	kill -TERM -- -$pid_a -$pid_b 2>/dev/null
fi
wait $pid_a; rc_a=$?
wait $pid_b; rc_b=$?
# Still running well after both sides are gone, the simulator is stuck
# opening or writing a FIFO nobody reads: SIGKILL (SIGTERM would end it with
# status 0).
for _ in $(seq 100); do kill -0 $pid_s 2>/dev/null || break; sleep 0.1; done
kill -KILL $pid_s 2>/dev/null
wait $pid_s; rc_s=$?
sides=
echo "# pipeline: both sides done in $(($(date +%s) - tp)) s"
if [ $hung = 0 ] && [ $rc_a = 0 ] && [ $rc_b = 0 ] && [ $rc_s = 0 ]; then
	ok "pipeline sim -> sift .. auth -> qkd-ks-sink ran in netns alice and bob"
else
	fail "pipeline ran (sim $rc_s, alice $rc_a, bob $rc_b, hung $hung)"
	for f in "$W"/*.log; do
		[ -s "$f" ] && sed "s|^|#   ${f##*/}: |" "$f" | tail -n 5
	done
	bail "no keys from the pipeline"
fi

# cut_keys FILE: the pipeline's final frames cut as qkd-ks-sink cuts them:
# "F KEY_ID STATE BITS" per frame, "K STORE_ID HEX" per key (store key
# f * 65536 + i is bytes [72 i, 72 i + 72) of frame f's key). One od and one
# awk for the whole file: header layout in Documentation/frame-format.md.
cut_keys() {
	od -An -v -tu1 "$1" | awk -v kb=$KEY_BYTES '
	{ for (i = 1; i <= NF; i++) b[n++] = $i }
	END {
		while (off + 96 <= n) {
			k = 0; bits = 0; plen = 0
			for (j = 7; j >= 0; j--) {
				k = k * 256 + b[off + 8 + j]; bits = bits * 256 + b[off + 16 + j]
			}
			for (j = 3; j >= 0; j--)
				plen = plen * 256 + b[off + 44 + j]
			print "F", k, b[off + 6], bits
			for (i = 0; b[off + 6] == 7 && i < int(int(bits / 8) / kb); i++) {
				printf "K %d ", k * 65536 + i
				for (j = 0; j < kb; j++)
					printf "%02x", b[off + 96 + i * kb + j]
				printf "\n"
			}
			off += 96 + plen
		}
		if (off != n || n == 0)
			exit 1
	}'
}
(umask 077; cut_keys "$W/alice.final" >"$W/alice.cut" && cut_keys "$W/bob.final" >"$W/bob.cut")
cut_ok=$?
grep '^F' "$W/alice.cut" | sed 's/^F /#   final key id, state, bits: /'
nframes=$(grep -c '^F [0-9]* 7 ' "$W/alice.cut")
nkeys=$(grep -c '^K' "$W/alice.cut")
check "$nframes final keys ($nkeys of $KEY_BYTES bytes), identical on both sides" \
	test $cut_ok = 0 -a "$nframes" = $FRAMES -a "$nkeys" -ge 20 \
	-a -z "$(cmp "$W/alice.cut" "$W/bob.cut" 2>&1)"

expect=$(awk -v kb=$KEY_BYTES '$1 == "K" { printf "%s %d available\n", $2, kb }' "$W/alice.cut")
check "both stores hold the same $nkeys key ids, as cut by qkd-ks-sink" \
	test "$(key_list a)" = "$expect" -a "$(key_list b)" = "$expect"

# frame_key ID FROM LEN: bytes [FROM, FROM + LEN) of store key ID as hex, as
# alice's pipeline delivered them.
frame_key() {
	local h
	h=$(awk -v k="$1" '$1 == "K" && $2 == k { print $3 }' "$W/alice.cut")
	echo "${h:$(($2 * 2)):$(($3 * 2))}"
}
# The first key: fetched (consumed) on both sides, compared as digests.
k1=$(lowest_key a)
d_a=$(ctl a key fetch $LINK "$k1" | awk '{ printf "%s", $2 }' | sha)
d_b=$(ctl b key fetch $LINK "$k1" | awk '{ printf "%s", $2 }' | sha)
d_f=$(frame_key "$k1" 0 $KEY_BYTES | tr -d '\n' | sha)
check "key $k1: the same bytes in both stores, the pipeline's (digests compared)" \
	test "$d_a" = "$d_b" -a "$d_a" = "$d_f" -a "$d_a" != "$(printf '' | sha)"

# ---- 3. ESP SAs keyed from the link -----------------------------------------
policies() { # ns local peer
	ip -n "$1" xfrm policy add src "$2" dst "$3" dir out \
		tmpl src "$2" dst "$3" proto esp reqid 7 mode transport &&
	ip -n "$1" xfrm policy add src "$3" dst "$2" dir in \
		tmpl src "$3" dst "$2" proto esp reqid 7 mode transport
}
bind() { # side [options...]: prints the binding id
	local s=$1 l=$A_IP p=$B_IP
	shift
	[ "$s" = b ] && l=$B_IP p=$A_IP
	ctl "$s" xfrm bind $LINK src "$l" dst "$p" spi-base 0x1000 reqid 7 "$@"
}
unbind_all() {
	local s id
	for s in a b; do
		for id in $(xshow $s | sed -n 's/^\([0-9]*\): .*/\1/p'); do
			ctl $s xfrm unbind $LINK "$id"
		done
	done
}
# sa_keys SIDE SPI: "SRC DST HEX" of each ESP SA with that SPI (key+salt in hex)
sa_keys() {
	ip -n "$(ns_of "$1")" xfrm state | awk -v want="$2" '
		function num(h,   i, v) { v = 0; h = tolower(h); sub(/^0x/, "", h)
			for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
			return v }
		/^src / { src = $2; dst = $4 }
		/proto esp spi/ { spi = num($4) }
		/aead rfc4106/ && spi == num(want) { h = $3; sub(/^0x/, "", h); print src, dst, h }'
}
sa_key() { # SAS SRC DST: the key of that direction from sa_keys output
	awk -v s="$2" -v d="$3" '$1 == s && $2 == d { print $3 }' <<<"$1"
}
ping_a() { in_ns a ping "$@" "$B_IP" >"$W/ping.out" 2>&1; }

stamp "pipeline and store checks done"
policies alice $A_IP $B_IP && policies bob $B_IP $A_IP || bail "XFRM policies"
ida=$(bind a packets 20) && idb=$(bind b packets 20)
check "ESP SAs bound to link $LINK on both sides (rekey every 20 packets)" \
	test -n "$ida" -a -n "$idb"
check "ping alice -> bob passes over the ESP SAs" ping_a -c 2 -i 0.2 -W 2 -q
xa=$(xshow a)
check "it was ESP: alice's outbound SA counted the packets" grep -q 'used-packets [1-9]' <<<"$xa"

# ka: key id of the current generation on alice; the key of alice -> bob is
# the first half of that store key (the lower address sends with it), the
# key of bob -> alice the second half.
check_sa_keys() { # label
	local xa xb ka kb spi sa sb ab_a ab_b ba_a ba_b
	xa=$(xshow a) xb=$(xshow b)
	ka=$(field "$xa" key-id) kb=$(field "$xb" key-id) spi=$(field "$xa" spi)
	sa=$(sa_keys a "$spi") sb=$(sa_keys b "$spi")
	ab_a=$(sa_key "$sa" $A_IP $B_IP) ab_b=$(sa_key "$sb" $A_IP $B_IP)
	ba_a=$(sa_key "$sa" $B_IP $A_IP) ba_b=$(sa_key "$sb" $B_IP $A_IP)
	check "$1: both sides on key $ka, SPI $spi (bob: key $kb)" \
		test -n "$ka" -a "$ka" = "$kb" -a "$spi" = "$(printf '%#x' $((0x1000 + (((ka * 0x61C8864680B583EB) >> 48) & 0xffff))))"
	check "$1: ip xfrm state shows the same keys on both sides, one per direction" \
		test -n "$ab_a" -a "$ab_a" = "$ab_b" -a -n "$ba_a" -a "$ba_a" = "$ba_b" -a "$ab_a" != "$ba_a"
	check "$1: the SA keys are bytes of the pipeline's final key of frame $((ka >> 16))" \
		test "$ab_a" = "$(frame_key "$ka" 0 36)" -a "$ba_a" = "$(frame_key "$ka" 36 36)"
	SA_KEY=$ab_a SA_SPI=$spi
}
stamp "first SAs bound"
check_sa_keys "first SAs"
stamp "first SAs checked"
key0=$SA_KEY spi0=$SA_SPI
check "the key bytes never reach qkdctl's output" \
	test -n "$key0" -a "${xa/${key0:0:16}/}" = "$xa"

# Rekey on the 20-packet budget while pinging.
stamp "rekey ping starts"
# 70 packets: the last rekey is not right at the end of the run.
ping_a -c 70 -i 0.02 -W 1 -q
loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$W/ping.out")
xa=$(xshow a)
gens=$(field "$xa" generations)
echo "# rekey run: loss ${loss:-?}%, alice generations $gens, SPI $spi0 -> $(field "$xa" spi)"
check "rekeyed several times during the ping (generations $gens)" test "${gens:-0}" -ge 3
check "the ping kept going through the rekeys (loss ${loss:-?}% <= 5%)" \
	awk -v l="${loss:-100}" 'BEGIN { exit !(l <= 5) }'
sleep 1	# let the last rekey settle on both sides
check_sa_keys "after rekeying"
stamp "rekey checks done"
check "rekeying changed SPI and key" test "$SA_SPI" != "$spi0" -a "$SA_KEY" != "$key0"
check "the stores gave up the same keys (lowest left: alice $(lowest_key a), bob $(lowest_key b))" \
	test -n "$(lowest_key a)" -a "$(key_list a)" = "$(key_list b)"

# One side given a different key: alice's copy of key Y = X + 1 is replaced
# by random bytes under the same id before both sides bind from X with a
# 20-packet budget. Traffic passes on X; the first rekey moves both sides to
# Y (same id, same SPI), and there it stops.
stamp "negative test starts"
unbind_all
check "unbind deletes every SA" test -z "$(ip -n alice xfrm state; ip -n bob xfrm state)"
x=$(lowest_key a)
y=$(key_list a | awk 'NR == 2 { print $1 }')
ctl a key fetch $LINK "$y" >/dev/null &&
	printf '%s %s\n' "$y" "$(head -c $KEY_BYTES /dev/urandom | hex)" | ctl a key push $LINK
bind a packets 20 >/dev/null && bind b packets 20 >/dev/null
xa=$(xshow a) xb=$(xshow b)
check "bound on key $x on both sides, next key $y" \
	test "$(field "$xa" key-id)" = "$x" -a "$(field "$xb" key-id)" = "$x" \
	-a "$(field "$xa" next-key-id)" = "$y" -a "$(field "$xb" next-key-id)" = "$y"
ping_a -c 30 -i 0.05 -W 1 -q
rx=$(sed -n 's/.*, \([0-9]*\) received.*/\1/p' "$W/ping.out")
sleep 1
xa=$(xshow a) xb=$(xshow b)
spi=$(field "$xa" spi)
check "ping passed on key $x, stopped after the rekey to key $y ($rx of 30 replies)" \
	test "${rx:-0}" -ge 10 -a "${rx:-30}" -lt 30
check "key $y differs on alice: both sides on key $y with the same SPI $spi" \
	test -n "$spi" -a "$spi" = "$(field "$xb" spi)" -a "$(field "$xa" key-id)" = "$y" \
	-a "$(field "$xb" key-id)" = "$y"
ab_a=$(sa_key "$(sa_keys a "$spi")" $A_IP $B_IP) ab_b=$(sa_key "$(sa_keys b "$spi")" $A_IP $B_IP)
check "key $y differs on alice: ip xfrm state shows different keys" \
	test -n "$ab_a" -a -n "$ab_b" -a "$ab_a" != "$ab_b"
stamp "rekeyed into different keys"
check "key $y differs on alice: the ping fails" eval '! ping_a -c 2 -i 0.2 -W 1 -q'
unbind_all
bind a >/dev/null && bind b >/dev/null
check "rebound on the next common key ($(field "$(xshow a)" key-id)): the ping passes again" \
	ping_a -c 2 -i 0.2 -W 2 -q
unbind_all
ip -n alice xfrm policy flush; ip -n bob xfrm policy flush
check "no SA and no policy left" \
	test -z "$(for n in alice bob; do ip -n $n xfrm state; ip -n $n xfrm policy; done)"
echo "# XFRM part done at $(elapsed) s"

# ---- 4. strongSwan with a pipeline key as PPK -------------------------------
ss_conf a
ss_conf b
# Both charons start at once (each takes seconds under TCG); the pid files
# ss_stop reads are written by the background ss_start too.
ss_start a &
ss_pid=$!
ss_start b
rc_b=$?
wait $ss_pid && [ $rc_b = 0 ] || bail "one charon per namespace"
stamp "charons up"
k=$(lowest_key a)
ss_swanctl_conf a "qkd:$LINK:$k"
ss_swanctl_conf b "qkd:$LINK:$k"
ss_load_conf a && ss_load_conf b || bail "swanctl --load-all"
ok "one charon per namespace, connection with ppk_required = yes loaded"
id_a=$(ppk a load $LINK "$k" 2>"$W/ppk-a.err")
id_b=$(ppk b load $LINK "$k" 2>"$W/ppk-b.err")
if [ "$id_a" = "qkd:$LINK:$k" ] && [ "$id_b" = "qkd:$LINK:$k" ]; then
	ok "qkd-ppk loaded pipeline key $k into both charons"
else
	fail "qkd-ppk loaded pipeline key $k into both charons (got '$id_a' '$id_b')"
	sed 's/^/#   /' "$W"/ppk-*.err
fi
check "key $k is consumed in both stores" \
	test -z "$(key_list a | awk -v k="$k" '$1 == k')$(key_list b | awk -v k="$k" '$1 == k')"
if ss_initiate; then
	ok "IKEv2 with ppk_required = yes established"
else
	fail "IKEv2 with ppk_required = yes established"
	ss_dump_logs
fi
stamp "IKE initiate done"
check "swanctl --list-sas shows the IKE_SA with PPK on both sides" \
	eval 'ss_sa_has_ppk a && ss_sa_has_ppk b'
sed -n '1,8s/^/#   /p' "$SS_DIR/a/sas.out"
check "charon used PPK_ID qkd:$LINK:$k" \
	grep -q "using PPK for PPK_ID 'qkd:$LINK:$k'" "$SS_DIR/a/charon.log" "$SS_DIR/b/charon.log"
check "ping alice -> bob passes over the IKE-negotiated ESP SA" eval 'ss_ping && ss_esp_used'

# Refused without the PPK: bob's is unloaded, alice offers the next pipeline key.
ss_terminate
k2=$(lowest_key a)
ppk b unload "qkd:$LINK:$k" && ppk a load $LINK "$k2" >/dev/null &&
	ss_reload_conns "qkd:$LINK:$k2" || fail "unload bob's PPK, load key $k2 on alice"
# Refused for that reason, not for any other failure.
if ! ss_initiate &&
	grep -q "PPK required but peer does not support PPK" "$SS_DIR/initiate.out"; then
	ok "peer without the PPK is refused (no USE_PPK from bob)"
else
	fail "peer without the PPK is refused (no USE_PPK from bob)"
fi
echo "# strongSwan part done at $(elapsed) s"
[ "$tap_failed" -eq 0 ] || ss_dump_logs 30
echo "1..$tap_n"
[ "$tap_failed" -eq 0 ]
