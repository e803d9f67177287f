#!/bin/bash
# The module as an xfrm key manager: its SAs show in `ip xfrm monitor` (NEWSA,
# Deleted), it leaves other key managers' errors alone (setsockopt(IP_XFRM_POLICY)
# with a bogus policy fails the same with and without it), and every outbound SA
# has a budget: one hour by default, the soft packet limit capped at 2^30 so the
# 32-bit sequence number (no ESN) never wraps.
set -u
B=${QKD_BUILD:-build}
Q=$(realpath "$B/bin/qkdctl")
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
A() { ip netns exec alice "$@"; }
A_IP=10.79.0.1 B_IP=10.79.0.2

echo "TAP version 13"
modprobe -a veth esp4 xfrm_user gcm ctr ghash_clmulni_intel aesni_intel seqiv 2>/dev/null
# errno of setsockopt(IP_XFRM_POLICY) with 4 bytes of garbage, as a name.
bogus() {
	python3 -c 'import socket, errno
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.setsockopt(socket.IPPROTO_IP, 17, b"\x01\x02\x03\x04")
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])'
}
# Loaded after xfrm_user, the module is the last key manager asked.
rmmod qkd_keystore
without=$(bogus)
insmod "$QKD_MODULE" || exit 1
with=$(bogus)
echo "# bogus IP_XFRM_POLICY: $with with the module, $without without"
check "IP_XFRM_POLICY errno is the same with the module loaded ($with) as without ($without)" \
	test -n "$with" -a "$with" = "$without"

ip netns add alice || exit 1
trap 'kill $mon 2>/dev/null; ip netns del alice' EXIT
A ip link add va type dummy && A ip addr add $A_IP/24 dev va && A ip link set va up
A "$Q" link add ab low-watermark 0
for i in 1 2 3; do
	printf '%d %s\n' "$i" "$(head -c 72 /dev/urandom | od -An -tx1 | tr -d ' \n')"
done | A "$Q" key push ab
A ip xfrm monitor >/tmp/xfrm-km.mon 2>&1 &
mon=$!
sleep 1
id=$(A "$Q" xfrm bind ab src $A_IP dst $B_IP spi-base 0x1000 reqid 7)
sleep 1
check "ip xfrm monitor sees the module's outbound SA added" \
	grep -q "^src $A_IP dst $B_IP" /tmp/xfrm-km.mon
check "ip xfrm monitor sees the module's inbound SA added" \
	grep -q "^src $B_IP dst $A_IP" /tmp/xfrm-km.mon
st=$(A ip -s xfrm state get src $A_IP dst $B_IP proto esp \
	spi "$(A "$Q" xfrm show ab | sed -n 's/.* spi \(0x[0-9a-f]*\).*/\1/p')")
echo "$st" | sed -n '/lifetime config/,/lifetime current/p' | sed 's/^/# /'
check "no budget given: the outbound SA expires after an hour (soft add 3600)" \
	grep -q 'expire add: soft 3600(sec), hard 7200(sec)' <<<"$st"
check "no budget given: the soft packet limit is 2^30, the hard one below 2^32" \
	grep -q 'limit: soft 1073741824(packets), hard 2147483648(packets)' <<<"$st"
A "$Q" xfrm unbind ab "$id"
sleep 1
check "ip xfrm monitor sees the module's SAs deleted" \
	test "$(grep -c '^Deleted src' /tmp/xfrm-km.mon)" -ge 2

# A packet budget above the cap is capped.
id=$(A "$Q" xfrm bind ab src $A_IP dst $B_IP spi-base 0x1000 reqid 7 packets 1099511627776)
st=$(A ip -s xfrm state | sed -n "/^src $A_IP dst $B_IP/,/^src/p")
check "packets 2^40: the soft packet limit is capped at 2^30" \
	grep -q 'limit: soft 1073741824(packets), hard 2147483648(packets)' <<<"$st"
A "$Q" xfrm unbind ab "$id"
kill $mon 2>/dev/null
echo "1..$n"
[ "$fails" -eq 0 ]
