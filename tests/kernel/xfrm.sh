#!/bin/bash
# In-kernel XFRM injection, end to end in the VM: two namespaces (alice, bob) on a
# veth pair, the same keys in both key stores, ESP SAs bound on both sides by
# qkd_keystore. ping passes; both sides hold the same key for each SA; rekeying on a
# packet budget changes SPI and key while a ping keeps going; different keys on the
# two sides stop the traffic; unbind and link removal delete the SAs; a binding out of
# keys fails closed and recovers; IPv6 and tunnel mode.
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
# The SPI of key id $2 on spi-base $1: base + the kernel's hash_64(id, 16).
spi_of() { printf '%#x' $(($1 + ((($2 * 0x61C8864680B583EB) >> 48) & 0xffff))); }
A_IP=10.77.0.1 B_IP=10.77.0.2

echo "TAP version 13"
# One modprobe for what would otherwise be autoloaded piecemeal (slow under TCG).
modprobe -a veth esp4 xfrm_user gcm ctr ghash_clmulni_intel aesni_intel seqiv 2>/dev/null
ip netns add alice && ip netns add bob || exit 1
trap 'ip netns del alice; ip netns del bob' EXIT
ip link add va netns alice type veth peer name vb netns bob
A ip addr add $A_IP/24 dev va && A ip link set va up && A ip link set lo up
Bb ip addr add $B_IP/24 dev vb && Bb ip link set vb up && Bb ip link set lo up

policies() { # ns local peer
	ip netns exec "$1" ip xfrm policy add src "$2" dst "$3" dir out \
		tmpl src "$2" dst "$3" proto esp reqid 7 mode transport
	ip netns exec "$1" ip xfrm policy add src "$3" dst "$2" dir in \
		tmpl src "$3" dst "$2" proto esp reqid 7 mode transport
}
policies alice $A_IP $B_IP
policies bob $B_IP $A_IP

# The same 72-byte keys, ids 1..40, on both sides.
keys=$(for i in $(seq 1 40); do
	printf '%d %s\n' "$i" "$(head -c 72 /dev/urandom | od -An -tx1 | tr -d ' \n')"
done)
for ns in alice bob; do
	ip netns exec $ns "$Q" link add ab low-watermark 0 && ip netns exec $ns "$Q" key push ab <<<"$keys"
done

bind() { # ns local peer [extra...]
	local ns=$1 l=$2 p=$3
	shift 3
	ip netns exec "$ns" "$Q" xfrm bind ab src "$l" dst "$p" spi-base 0x1000 reqid 7 "$@"
}
ida=$(bind alice $A_IP $B_IP packets 40)
idb=$(bind bob $B_IP $A_IP packets 40)
check "bind on both sides" test -n "$ida" -a -n "$idb"
check "ping passes across the QKD-keyed ESP SAs" quiet A ping -c 3 -W 2 -q $B_IP
check "xfrm show reports the remaining budget" \
	bash -c "ip netns exec alice $Q xfrm show ab | grep -Eq 'rekey-in packets [0-9]+'"
check "traffic is ESP (alice's outbound SA counted packets)" \
	bash -c "ip netns exec alice $Q xfrm show ab | grep -q 'used-packets [1-9]'"

# Same key on both ends of each direction, and the store lost exactly those keys.
sa_key() { # ns src dst spi
	ip netns exec "$1" ip xfrm state get src "$2" dst "$3" proto esp spi "$4" |
		sed -n 's/.*aead rfc4106(gcm(aes)) \(0x[0-9a-f]*\) 128.*/\1/p'
}
spi=$(A "$Q" xfrm show ab | sed -n 's/.* spi \(0x[0-9a-f]*\).*/\1/p')
k_ab_a=$(sa_key alice $A_IP $B_IP "$spi"); k_ab_b=$(sa_key bob $A_IP $B_IP "$spi")
k_ba_a=$(sa_key alice $B_IP $A_IP "$spi"); k_ba_b=$(sa_key bob $B_IP $A_IP "$spi")
check "alice->bob SA has the same key on both sides" \
	test -n "$k_ab_a" -a "$k_ab_a" = "$k_ab_b"
check "bob->alice SA has the same key on both sides" \
	test -n "$k_ba_a" -a "$k_ba_a" = "$k_ba_b"
check "the two directions use different keys" test "$k_ab_a" != "$k_ba_a"
first=$(sed -n '1s/^[0-9]* //p' <<<"$keys")
check "the key is the link's key 1 (alice sends with its first 36 bytes)" \
	test "$k_ab_a" = "0x${first:0:72}" -a "$k_ba_a" = "0x${first:72:72}"
check "the key bytes never reached qkdctl's output" \
	bash -c "! ip netns exec alice $Q xfrm show ab | grep -q ${first:0:16}"
check "the store gave up keys 1 and 2 (current and pre-installed next)" \
	bash -c "ip netns exec alice $Q key list ab | head -1 | grep -q '^3 '"

# Rekey on a 40-packet budget while pinging: SPI changes, the ping keeps going.
spi0=$spi
A ping -c 150 -i 0.02 -W 1 -q $B_IP >/tmp/ping.out 2>&1
loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' /tmp/ping.out)
gens=$(A "$Q" xfrm show ab | sed -n 's/.* generations \([0-9]*\).*/\1/p')
spi1=$(A "$Q" xfrm show ab | sed -n 's/.* spi \(0x[0-9a-f]*\).*/\1/p')
echo "# rekey run: loss ${loss}%, alice generations $gens, spi $spi0 -> $spi1"
check "rekeyed several times during the ping" test "${gens:-0}" -ge 4
check "the SPI changed with the key" test "$spi1" != "$spi0"
check "the ping kept going through the rekeys (loss ${loss}% <= 5%)" \
	awk -v l="${loss:-100}" 'BEGIN { exit !(l <= 5) }'
# Each side follows the other within a second of seeing its traffic.
for _ in $(seq 20); do
	ka=$(A "$Q" xfrm show ab | sed -n 's/.* key-id \([0-9]*\).*/\1/p')
	kb=$(Bb "$Q" xfrm show ab | sed -n 's/.* key-id \([0-9]*\).*/\1/p')
	[ "$ka" = "$kb" ] && break
	A ping -c 1 -W 1 -q $B_IP >/dev/null 2>&1
done
check "both sides end up on the same key id (alice $ka, bob $kb)" test -n "$ka" -a "$ka" = "$kb"
check "and still talk" quiet A ping -c 2 -W 2 -q $B_IP

check "a second binding on the same link is refused" \
	bash -c "! ip netns exec alice $Q xfrm bind ab src $A_IP dst $B_IP spi-base 0x3000 reqid 8 2>/dev/null"

# IPv6, on a link of its own.
A ip addr add fd77::1/64 dev va nodad; Bb ip addr add fd77::2/64 dev vb nodad
for ns in alice bob; do
	l=fd77::1 p=fd77::2
	[ $ns = bob ] && l=fd77::2 p=fd77::1
	ip netns exec $ns ip xfrm policy add src $l dst $p dir out \
		tmpl src $l dst $p proto esp reqid 8 mode transport
	ip netns exec $ns ip xfrm policy add src $p dst $l dir in \
		tmpl src $p dst $l proto esp reqid 8 mode transport
	# Only two keys: the binding runs dry on purpose below.
	ip netns exec $ns "$Q" link add ab6 && ip netns exec $ns "$Q" key push ab6 <<<"$(head -n 2 <<<"$keys")"
done
A "$Q" xfrm bind ab6 src fd77::1 dst fd77::2 spi-base 0x3000 reqid 8 packets 6 >/dev/null
Bb "$Q" xfrm bind ab6 src fd77::2 dst fd77::1 spi-base 0x3000 reqid 8 packets 6 >/dev/null
check "IPv6: ping passes across QKD-keyed ESP SAs" quiet A ping -6 -c 3 -W 2 -q fd77::2
check "IPv6: both sides hold the same key" \
	test -n "$(sa_key alice fd77::1 fd77::2 "$(spi_of 0x3000 1)")" -a \
	     "$(sa_key alice fd77::1 fd77::2 "$(spi_of 0x3000 1)")" = \
	     "$(sa_key bob fd77::1 fd77::2 "$(spi_of 0x3000 1)")"
# Out of keys: key 2 is used after 6 packets, its hard limit (12) stops the traffic.
A ping -6 -c 30 -i 0.1 -W 1 -q fd77::2 >/dev/null 2>&1
check "out of keys: the binding says it waits for a key" \
	bash -c "ip netns exec alice $Q xfrm show ab6 | grep -q 'error No data available'"
check "out of keys: traffic stops at the hard limit (fails closed)" \
	bash -c "! ip netns exec alice ping -6 -c 2 -W 1 -q fd77::2 >/dev/null"
for ns in alice bob; do
	ip netns exec $ns "$Q" key push ab6 <<<"$(sed -n 3,6p <<<"$keys")"
done
for _ in $(seq 20); do quiet A ping -6 -c 1 -W 1 fd77::2 && break; sleep 0.5; done
check "keys back: the binding rekeys by itself and traffic resumes" \
	quiet A ping -6 -c 3 -W 2 -q fd77::2
check "keys back: both sides use the same SPI again" \
	bash -c "test \"\$(ip netns exec alice $Q xfrm show ab6 | grep -o 'spi 0x[0-9a-f]*')\" = \
		\"\$(ip netns exec bob $Q xfrm show ab6 | grep -o 'spi 0x[0-9a-f]*')\""
A "$Q" link del ab6; Bb "$Q" link del ab6

# Unbind deletes the SAs.
A "$Q" xfrm unbind ab "$ida"; Bb "$Q" xfrm unbind ab "$idb"
check "unbind deletes every SA" test -z "$(A ip xfrm state; Bb ip xfrm state)"
check "no traffic without SAs" bash -c "! ip netns exec alice ping -c 1 -W 1 -q $B_IP >/dev/null"

# Different keys on the two sides: no traffic.
printf '100 %s\n' "$(head -c 72 /dev/urandom | od -An -tx1 | tr -d ' \n')" | A "$Q" key push ab
printf '100 %s\n' "$(head -c 72 /dev/urandom | od -An -tx1 | tr -d ' \n')" | Bb "$Q" key push ab
bind alice $A_IP $B_IP key-id 100 >/dev/null; bind bob $B_IP $A_IP key-id 100 >/dev/null
check "SAs installed with the same SPI on both sides" \
	test "$(A ip xfrm state | grep -c spi)" -ge 2 -a "$(Bb ip xfrm state | grep -c spi)" -ge 2
check "different keys: the ping fails" bash -c "! ip netns exec alice ping -c 3 -W 1 -q $B_IP >/dev/null"

# Link removal deletes the SAs too.
A "$Q" link del ab; Bb "$Q" link del ab
check "link removal deletes every SA" test -z "$(A ip xfrm state; Bb ip xfrm state)"

# Tunnel mode.
for ns in alice bob; do
	l=$A_IP p=$B_IP
	[ $ns = bob ] && l=$B_IP p=$A_IP
	ip netns exec $ns ip xfrm policy flush
	ip netns exec $ns ip xfrm policy add src $l dst $p dir out \
		tmpl src $l dst $p proto esp reqid 9 mode tunnel
	ip netns exec $ns ip xfrm policy add src $p dst $l dir in \
		tmpl src $p dst $l proto esp reqid 9 mode tunnel
	ip netns exec $ns "$Q" link add abt && ip netns exec $ns "$Q" key push abt <<<"$(head -n 4 <<<"$keys")"
	ip netns exec $ns "$Q" xfrm bind abt src $l dst $p spi-base 0x5000 reqid 9 mode tunnel >/dev/null
done
check "tunnel mode: ping passes" quiet A ping -c 3 -W 2 -q $B_IP
check "tunnel mode: the SAs are tunnel SAs" bash -c "ip netns exec alice ip xfrm state | grep -q 'mode tunnel'"
check "tunnel mode: both sides hold the same key" \
	test -n "$(sa_key alice $A_IP $B_IP "$(spi_of 0x5000 1)")" -a \
	     "$(sa_key alice $A_IP $B_IP "$(spi_of 0x5000 1)")" = \
	     "$(sa_key bob $A_IP $B_IP "$(spi_of 0x5000 1)")"

echo "1..$n"
[ "$fails" -eq 0 ]
