#!/bin/bash
# Who may touch the store (in the VM, module loaded): an unprivileged user
# (nobody) can neither alter the qkd keyrings and keys nor see the store over
# netlink; request_key() of a missing qkd key fails without an upcall and
# leaves no negative key; root's reads still work afterwards.
set -u
B=${QKD_BUILD:-build}
Q=$B/bin/qkdctl
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
refused() { ! nobody "$@" >/dev/null 2>&1; }
keyring_of() { $Q link show "$1" | sed -n 's/.* keyring \([0-9]*\).*/\1/p'; }

echo "TAP version 13"
L=pm$$
$Q link add $L || exit 1
printf '1 00112233\n2 44556677\n' | $Q key push $L
KR=$(keyring_of $L)
MODKR=$(cat /sys/module/qkd_keystore/parameters/keyring)
NETKR=$(( 16#$(awk '$9 == "qkd:net:'"$(stat -L -c %i /proc/self/ns/net)"':" {print $1}' /proc/keys) ))
K1=$(keyctl search "$KR" qkd "$L:1")

for r in "module:$MODKR" "net:$NETKR" "link:$KR"; do
	name=${r%%:*} s=${r#*:}
	check "nobody cannot invalidate the $name keyring" refused keyctl invalidate "$s"
	check "nobody cannot clear the $name keyring" refused keyctl clear "$s"
	check "nobody cannot setperm the $name keyring" refused keyctl setperm "$s" 0x3f3f3f3f
	check "nobody cannot link the $name keyring" refused keyctl link "$s" @s
	check "nobody cannot view the $name keyring" refused keyctl describe "$s"
done
check "nobody cannot invalidate a key" refused keyctl invalidate "$K1"
check "nobody cannot unlink a key" refused keyctl unlink "$K1" "$KR"
check "nobody cannot setperm a key" refused keyctl setperm "$K1" 0x3f3f3f3f
check "root cannot invalidate the link keyring either (KEEP)" \
	bash -c "! keyctl invalidate $KR 2>/dev/null"
check "root cannot clear the link keyring (KEEP)" bash -c "! keyctl clear $KR 2>/dev/null"
check "root still finds the key afterwards" test "$(keyctl search "$KR" qkd "$L:1")" = "$K1"
check "root still reads the key afterwards" \
	test "$(keyctl pipe "$K1" | od -An -tx1 | tr -d ' \n')" = 00112233

# request_key() of a key that is not stored: a clean failure, no negative key.
out=$(keyctl session - bash -c "
	keyctl link $MODKR @s
	keyctl request2 qkd $L:99 qkd-test >/dev/null 2>&1 && echo found=yes || echo found=no
	for _ in \$(seq 30); do
		grep -q ' qkd  *$L:99' /proc/keys || { echo left=none; exit; }
		sleep 0.1
	done
	echo left=key" 2>&1)
check "request_key of a missing qkd key fails" grep -q '^found=no$' <<<"$out"
check "and leaves no negative key behind" grep -q '^left=none$' <<<"$out"

# Netlink: reads and events are for CAP_NET_ADMIN only.
check "nobody cannot list links" refused $Q link show
check "nobody cannot show a link" refused $Q link show $L
check "nobody cannot list a link's keys" refused $Q key list $L
check "nobody cannot read the counters" refused $Q stats
timeout 5 setpriv --reuid=65534 --regid=65534 --clear-groups $Q monitor count 1 \
	>/dev/null 2>&1 &
mon=$!
sleep 1
printf '3 8899\n' | $Q key push $L
wait $mon
rc=$?
check "nobody cannot join the event group (refused, not timed out: rc $rc)" \
	test "$rc" -ne 0 -a "$rc" -ne 124
check "root still lists the link" bash -c "$Q link show | grep -q '^$L'"

$Q link del $L
echo "1..$n"
[ "$fails" -eq 0 ]
