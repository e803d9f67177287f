#!/bin/bash
# XFRM bindings never burn a key: a local install failure (an SA installed by hand
# at the SPI the binding needs) leaves the key in the store and both sides on the same
# key id; key ids frame*65536+i (qkd-ks-sink's numbering) get distinct SPIs, so one key
# per frame does not collide with itself and the stores drain only as fast as the
# rekeys.
set -u
B=${QKD_BUILD:-build}
Q=$(realpath "$B/bin/qkdctl")
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
A() { ip netns exec alice "$@"; }
Bb() { ip netns exec bob "$@"; }
quiet() { "$@" >/dev/null 2>&1; }
A_IP=10.78.0.1 B_IP=10.78.0.2

echo "TAP version 13"
modprobe -a veth esp4 xfrm_user gcm ctr ghash_clmulni_intel aesni_intel seqiv 2>/dev/null
ip netns add alice && ip netns add bob || exit 1
trap 'ip netns del alice; ip netns del bob' EXIT
ip link add va netns alice type veth peer name vb netns bob
A ip addr add $A_IP/24 dev va && A ip link set va up && A ip link set lo up
Bb ip addr add $B_IP/24 dev vb && Bb ip link set vb up && Bb ip link set lo up
for ns in alice bob; do
	l=$A_IP p=$B_IP
	[ $ns = bob ] && l=$B_IP p=$A_IP
	ip netns exec $ns ip xfrm policy add src $l dst $p dir out \
		tmpl src $l dst $p proto esp reqid 7 mode transport
	ip netns exec $ns ip xfrm policy add src $p dst $l dir in \
		tmpl src $p dst $l proto esp reqid 7 mode transport
done
hexkey() { head -c 72 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# "ID HEX" lines, one random 72-byte key per id read from stdin (one od for all).
keys_for() {
	local ids
	ids=$(cat)
	paste -d ' ' <(echo "$ids") <(head -c $((72 * $(wc -l <<<"$ids"))) /dev/urandom |
		od -An -v -tx1 | tr -d ' \n' | fold -w 144)
}
field() { sed -n "s/.* $2 \([0-9a-fx]*\).*/\1/p" <<<"$1"; }
first_key() { ip netns exec "$1" "$Q" key list "$2" | awk 'NR == 1 { print $1 }'; }
nkeys() { ip netns exec "$1" "$Q" key list "$2" | grep -c '^[0-9]'; }
# SPIs of bob's inbound SAs (the same SPIs as alice's inbound ones): current and next.
bob_spis() {
	Bb ip xfrm state | sed -n "s/^src $A_IP dst $B_IP\$/X/;/^X/{n;s/.*spi \(0x[0-9a-f]*\).*/\1/p}" |
		while read -r s; do printf '%#x\n' "$s"; done
}

# 1. A colliding SA installed by hand on alice where her next inbound SA goes.
keys=$(seq 1 8 | keys_for)
for ns in alice bob; do
	ip netns exec $ns "$Q" link add ab low-watermark 0 && ip netns exec $ns "$Q" key push ab <<<"$keys"
done
Bb "$Q" xfrm bind ab src $B_IP dst $A_IP spi-base 0x1000 reqid 7 packets 20 >/dev/null
sb=$(Bb "$Q" xfrm show ab)
cur_spi=$(field "$sb" spi)
next_spi=$(bob_spis | grep -v "^$cur_spi\$" | head -1)
echo "# bob: $sb"
A ip xfrm state add src $B_IP dst $A_IP proto esp spi "$next_spi" mode transport \
	aead 'rfc4106(gcm(aes))' "0x$(head -c 36 /dev/urandom | od -An -tx1 | tr -d ' \n')" 128
A "$Q" xfrm bind ab src $A_IP dst $B_IP spi-base 0x1000 reqid 7 packets 20 >/dev/null
sleep 2
sa=$(A "$Q" xfrm show ab)
echo "# alice with a foreign SA at spi $next_spi: $sa"
check "collision: alice's binding reports it (File exists)" grep -q 'error File exists' <<<"$sa"
check "collision: alice's next key (2) is still in her store" test "$(first_key alice ab)" = 2
check "collision: alice still runs on key 1 like bob" test "$(field "$sa" key-id)" = 1
A ip xfrm state del src $B_IP dst $A_IP proto esp spi "$next_spi"
for _ in $(seq 10); do
	sa=$(A "$Q" xfrm show ab)
	[ "$(field "$sa" next-key-id)" = 2 ] && break
	sleep 0.5
done
check "collision removed: alice pre-installs key 2 like bob" \
	test "$(field "$sa" next-key-id)" = "$(field "$sb" next-key-id)" -a "$(field "$sa" next-key-id)" = 2
A ping -c 60 -i 0.02 -W 1 -q $B_IP >/dev/null 2>&1
for _ in $(seq 10); do
	ka=$(field "$(A "$Q" xfrm show ab)" key-id); kb=$(field "$(Bb "$Q" xfrm show ab)" key-id)
	[ "$ka" = "$kb" ] && break
	quiet A ping -c 1 -W 1 $B_IP
done
check "after rekeys both sides are on the same key id (alice $ka, bob $kb)" test -n "$ka" -a "$ka" = "$kb"
check "and talk" quiet A ping -c 2 -W 2 -q $B_IP
A "$Q" link del ab; Bb "$Q" link del ab

# 2. One key per frame (ids frame*65536), then several per frame (frame*65536+i).
rekeys() { # link nkeys-before label
	local l=$1 before=$2 what=$3 ga gb
	for ns in alice bob; do
		local s=$A_IP d=$B_IP
		[ $ns = bob ] && s=$B_IP d=$A_IP
		ip netns exec $ns "$Q" xfrm bind "$l" src $s dst $d spi-base 0x2000 reqid 7 packets 4 >/dev/null
	done
	sleep 3
	check "$what: idle for 3 s the stores lose only the current and next key" \
		test "$(nkeys alice "$l")" -eq $((before - 2)) -a "$(nkeys bob "$l")" -eq $((before - 2))
	A ping -c 400 -i 0.01 -W 1 -q $B_IP >/dev/null 2>&1
	sleep 1.2
	ga=$(field "$(A "$Q" xfrm show "$l")" generations)
	gb=$(field "$(Bb "$Q" xfrm show "$l")" generations)
	echo "# $what: generations alice $ga bob $gb, keys left $(nkeys alice "$l") / $(nkeys bob "$l") of $before"
	check "$what: rekeyed many times (alice $ga generations)" test "${ga:-0}" -ge 50
	check "$what: alice's store lost no more keys than her rekeys plus two" \
		test $((before - $(nkeys alice "$l"))) -le $((ga + 2))
	check "$what: bob's store lost no more keys than his rekeys plus two" \
		test $((before - $(nkeys bob "$l"))) -le $((gb + 2))
	check "$what: still talking" quiet A ping -c 2 -W 2 -q $B_IP
	A "$Q" link del "$l"; Bb "$Q" link del "$l"
}
keys=$(for f in $(seq 1 300); do echo $((f * 65536)); done | keys_for)
for ns in alice bob; do
	ip netns exec $ns "$Q" link add one low-watermark 0 max-keys 1000 && ip netns exec $ns "$Q" key push one <<<"$keys"
done
rekeys one 300 "one key per frame"
keys=$(for f in $(seq 1 60); do for i in 0 1 2 3 4; do echo $((f * 65536 + i)); done; done |
	keys_for)
for ns in alice bob; do
	ip netns exec $ns "$Q" link add five low-watermark 0 max-keys 1000 && ip netns exec $ns "$Q" key push five <<<"$keys"
done
rekeys five 300 "five keys per frame"

echo "1..$n"
[ "$fails" -eq 0 ]
