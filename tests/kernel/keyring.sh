#!/bin/bash
# Keyring side of qkd_keystore, with keyctl from keyutils (in the VM, module loaded):
# find and read a pushed key once, request_key through a linked keyring,
# permissions (root only by default, a configured gid, unprivileged refusal,
# no userspace add_key of the type), and network-namespace isolation.
set -u
B=${QKD_BUILD:-build}
Q=$B/bin/qkdctl
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
keyring_of() { $Q link show "$1" | sed -n 's/.* keyring \([0-9]*\).*/\1/p'; }

echo "TAP version 13"
L=kr$$
$Q link add $L || exit 1
printf '1 00112233445566778899aabbccddeeff\n2 0102030405\n3 a0a1a2a3\n' | $Q key push $L
KR=$(keyring_of $L)
MODKR=$(cat /sys/module/qkd_keystore/parameters/keyring)

# Read once.
k=$(keyctl search "$KR" qkd "$L:1" 2>/dev/null)
check "keyctl search finds a pushed key by link:id" test -n "$k"
check "keyctl search from the module keyring descends to it" \
	test "$(keyctl search "$MODKR" qkd "$L:1" 2>/dev/null)" = "$k"
got=$(keyctl pipe "$k" 2>/dev/null | od -An -tx1 | tr -d ' \n')
check "keyctl pipe returns the pushed bytes" test "$got" = 00112233445566778899aabbccddeeff
check "a second read fails" bash -c "! keyctl pipe $k >/dev/null 2>&1"
# The keyring key is invalidated by a work item right after the read.
for _ in $(seq 100); do keyctl search "$KR" qkd "$L:1" >/dev/null 2>&1 || break; sleep 0.1; done
check "the key is gone from the keyring after the read" \
	bash -c "! keyctl search $KR qkd $L:1 >/dev/null 2>&1"
check "and from the store (netlink fetch by id fails)" \
	bash -c "! $Q key fetch $L 1 >/dev/null 2>&1"

# request_key() through the caller's session keyring.
r=$(keyctl session - bash -c "keyctl link $MODKR @s && keyctl request qkd $L:2" 2>/dev/null)
check "request_key finds a key once the module keyring is linked in" test -n "$r"
check "a key read through the keyring is gone for netlink" \
	bash -c "keyctl pipe $r >/dev/null && ! $Q key fetch $L 2 >/dev/null 2>&1"

# Permissions.
k3=$(keyctl search "$KR" qkd "$L:3")
check "unprivileged search is refused" \
	bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups keyctl search $KR qkd $L:3 >/dev/null 2>&1"
out=$(nobody keyctl pipe "$k3" 2>&1)
check "unprivileged read by serial is refused (EACCES)" \
	bash -c "[[ '$out' == *'Permission denied'* ]]"
check "unprivileged /proc/keys lists no qkd key" \
	bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups grep -q ' qkd  *$L:' /proc/keys"
check "unprivileged qkdctl key fetch is refused" \
	bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups $Q key fetch $L 3 >/dev/null 2>&1"
check "the refused key is still there for root" \
	test "$($Q key fetch $L 3)" = "3 a0a1a2a3"
check "userspace cannot add_key a qkd key" \
	bash -c "! keyctl add qkd $L:9 forged @s >/dev/null 2>&1"

# A configured group may read.
G=krg$$
$Q link add $G gid 65534
printf '7 cafe\n' | $Q key push $G
GKR=$(keyring_of $G)
got=$(nobody keyctl pipe "$(nobody keyctl search "$GKR" qkd "$G:7" 2>/dev/null)" 2>/dev/null |
	od -An -tx1 | tr -d ' \n')
check "the link's configured gid may search and read" test "$got" = cafe
$Q link del $G

# Network-namespace isolation: the same link name and key id in two namespaces.
printf '5 aaaa\n6 bbbb\n' | $Q key push $L
k6=$(keyctl search "$KR" qkd "$L:6")
ns_out=$(unshare -n bash -c "
	$Q link add $L && printf '5 cccc\n' | $Q key push $L || exit 1
	NKR=\$($Q link show $L | sed -n 's/.* keyring \([0-9]*\).*/\1/p')
	echo links=\$($Q link show | grep -c ':')
	echo own=\$(keyctl pipe \$(keyctl search $MODKR qkd $L:5) | od -An -tx1 | tr -d ' \n')
	keyctl search $MODKR qkd $L:6 >/dev/null 2>&1 && echo other=found || echo other=none
	printf '8 dddd\n' | $Q key push $L
	echo nskey=\$(keyctl search \$NKR qkd $L:8)
	keyctl pipe $k6 >/dev/null 2>&1 && echo byserial=read || echo byserial=refused
" 2>&1)
check "a new namespace sees only its own links" grep -q '^links=1$' <<<"$ns_out"
check "a search in a namespace finds that namespace's key" grep -q '^own=cccc$' <<<"$ns_out"
check "a namespace does not find another namespace's keys" grep -q '^other=none$' <<<"$ns_out"
check "another namespace cannot read a key by its serial number" grep -q '^byserial=refused$' <<<"$ns_out"
check "the first namespace still has its own key 5" test "$($Q key fetch $L 5)" = "5 aaaa"
nskey=$(sed -n 's/^nskey=//p' <<<"$ns_out")
gone=0
for _ in $(seq 300); do
	grep -q "^$(printf %08x "${nskey:-0}") " /proc/keys || { gone=1; break; }
	sleep 0.1
done
check "namespace exit wipes and removes its keys" test -n "$nskey" -a "$gone" = 1
check "init namespace keys not found from a namespace are still fetchable" \
	test "$($Q key fetch $L 6)" = "6 bbbb"

$Q link del $L
echo "1..$n"
[ "$fails" -eq 0 ]
