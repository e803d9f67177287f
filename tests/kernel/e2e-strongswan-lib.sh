# Shared helpers of the strongSwan PPK tests (sourced, not run):
#   tests/integration/strongswan-ppk.sh   host, real charon, keys from "user" keys
#   tests/kernel/e2e-strongswan.sh        VM, real charon, keys from qkd_keystore.ko
#
# Two network namespaces joined by a veth pair, one charon per namespace with
# its own strongswan.conf, VICI socket (path sockets work across namespaces),
# swanctl.conf and log. Callers set SS_DIR (a scratch directory) and the
# namespace names/addresses below, then call the functions.
#
# TAP helpers are included: ok/fail/skip print "ok N ..." lines.

: "${SS_NS_A:=ssa$$}" "${SS_NS_B:=ssb$$}"
: "${SS_IP_A:=10.231.0.1}" "${SS_IP_B:=10.231.0.2}"
: "${SS_PSK:=qkdpipe-e2e-ike-psk-not-secret}"
SS_CHARON=${SS_CHARON:-/usr/lib/ipsec/charon}
tap_n=0
tap_failed=0

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n $*"; }
fail() { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n $*"; }
skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n $* # SKIP"; }
check() { # check NAME COMMAND...: ok if the command succeeds
	local name=$1; shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}

# The namespace of a side: a or b.
ss_ns() { [ "$1" = a ] && echo "$SS_NS_A" || echo "$SS_NS_B"; }

ss_netns_up() {
	ip netns add "$SS_NS_A" && ip netns add "$SS_NS_B" || return 1
	ip link add "v$SS_NS_A" netns "$SS_NS_A" type veth peer name "v$SS_NS_B" netns "$SS_NS_B" ||
		return 1
	ip -n "$SS_NS_A" addr add "$SS_IP_A/24" dev "v$SS_NS_A" &&
	ip -n "$SS_NS_B" addr add "$SS_IP_B/24" dev "v$SS_NS_B" &&
	ip -n "$SS_NS_A" link set lo up && ip -n "$SS_NS_B" link set lo up &&
	ip -n "$SS_NS_A" link set "v$SS_NS_A" up && ip -n "$SS_NS_B" link set "v$SS_NS_B" up
}

# ss_conf SIDE: strongswan.conf of one instance (swanctl.conf comes later,
# once the PPK id is known).
ss_conf() {
	local side=$1 d=$SS_DIR/$1
	mkdir -p "$d"
	cat >"$d/strongswan.conf" <<-EOF
	charon {
		load = random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 hmac kdf gmp kernel-netlink socket-default vici
		install_routes = no
		# The first CHILD_SA in a fresh VM waits for crypto modules to
		# autoload under TCG: give the peer time before giving up.
		retransmit_tries = 4
		retransmit_timeout = 4
		plugins {
			vici {
				socket = unix://$d/charon.vici
			}
		}
		filelog {
			log {
				path = $d/charon.log
				time_format = %T
				default = 1
				ike = 2
				cfg = 2
				flush_line = yes
			}
		}
	}
	swanctl {
		# PSK only: no key parsers, which start slowly under TCG.
		load = random
		socket = unix://$d/charon.vici
	}
	EOF
}

# ss_swanctl_conf SIDE PPK_ID: the connection, PSK auth plus a required PPK.
ss_swanctl_conf() {
	local side=$1 ppk_id=$2 d=$SS_DIR/$1 me peer myip peerip
	if [ "$side" = a ]; then
		me=alice peer=bob myip=$SS_IP_A peerip=$SS_IP_B
	else
		me=bob peer=alice myip=$SS_IP_B peerip=$SS_IP_A
	fi
	cat >"$d/swanctl.conf" <<-EOF
	connections {
		qkd {
			version = 2
			local_addrs = $myip
			remote_addrs = $peerip
			proposals = aes256-sha256-x25519
			ppk_id = "$ppk_id"
			ppk_required = yes
			$( [ "${SS_CHILDLESS:-0}" = 1 ] && echo "childless = force" )
			local {
				auth = psk
				id = $me
			}
			remote {
				auth = psk
				id = $peer
			}
			children {
				qkd {
					mode = transport
					esp_proposals = aes256gcm16
					start_action = none
				}
			}
		}
	}
	secrets {
		ike-qkd {
			id-a = alice
			id-b = bob
			secret = "$SS_PSK"
		}
	}
	EOF
}

ss_swanctl() { # ss_swanctl SIDE ARGS...
	local side=$1; shift
	STRONGSWAN_CONF=$SS_DIR/$side/strongswan.conf ip netns exec "$(ss_ns "$side")" \
		swanctl "$@"
}

# Start charon in its namespace; a private tmpfs on /run keeps the compiled-in
# pid file /var/run/charon.pid apart from the other instance's.
ss_start() {
	local side=$1 d=$SS_DIR/$1 i
	rm -f "$d/charon.vici"
	STRONGSWAN_CONF=$d/strongswan.conf ip netns exec "$(ss_ns "$side")" \
		sh -c 'mount -t tmpfs none /run && exec "$0"' "$SS_CHARON" \
		>"$d/charon.out" 2>&1 &
	echo $! >"$d/charon.pid"
	# Poll with qkd-ppk (SS_PPK) when there is one: swanctl starts slowly.
	for i in $(seq 150); do
		if [ -S "$d/charon.vici" ]; then
			if [ -n "${SS_PPK:-}" ]; then
				"$SS_PPK" -s "$d/charon.vici" version >/dev/null 2>&1 && return 0
			else
				ss_swanctl "$side" --stats >/dev/null 2>&1 && return 0
			fi
		fi
		sleep 0.2
	done
	echo "# charon $side did not come up:"; sed 's/^/#   /' "$d/charon.out" "$d/charon.log" 2>/dev/null
	return 1
}

ss_stop() {
	local side=$1 d=$SS_DIR/$1 pid
	[ -f "$d/charon.pid" ] || return 0
	pid=$(cat "$d/charon.pid")
	kill "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$d/charon.pid"
}

ss_restart() { ss_stop "$1"; ss_start "$1"; }

# ss_load_conf SIDE: connections and the IKE PSK. Run it before qkd-ppk:
# --load-creds unloads every tagged secret missing from the file, PPKs too.
ss_load_conf() {
	ss_swanctl "$1" --load-all --noprompt --file "$SS_DIR/$1/swanctl.conf" \
		>"$SS_DIR/$1/load.out" 2>&1
}

# Initiate from a; success when the CHILD_SA (with SS_CHILDLESS=1: the
# IKE_SA alone, for kernels without XFRM) is up. Output in $SS_DIR/initiate.out.
ss_initiate() {
	if [ "${SS_CHILDLESS:-0}" = 1 ]; then
		ss_swanctl a --initiate --ike qkd --timeout 20 >"$SS_DIR/initiate.out" 2>&1
	else
		ss_swanctl a --initiate --child qkd --timeout 20 >"$SS_DIR/initiate.out" 2>&1
	fi
}

# Tear down every IKE_SA of the connection on both sides (also half-open ones).
ss_terminate() {
	local s
	for s in a b; do
		ss_swanctl "$s" --terminate --ike qkd --force --timeout 5 >/dev/null 2>&1
	done
	return 0
}

# ss_reload_conns PPK_ID: switch both sides' connection to another PPK id.
ss_reload_conns() {
	local s
	for s in a b; do
		ss_swanctl_conf "$s" "$1"
		ss_swanctl "$s" --load-conns --file "$SS_DIR/$s/swanctl.conf" \
			>"$SS_DIR/$s/load.out" 2>&1 || return 1
	done
}

# Is there an ESTABLISHED IKE_SA on SIDE whose proposal includes the PPK?
ss_sa_has_ppk() {
	ss_swanctl "$1" --list-sas >"$SS_DIR/$1/sas.out" 2>&1 &&
	grep -q 'ESTABLISHED' "$SS_DIR/$1/sas.out" &&
	grep -q '/PPK' "$SS_DIR/$1/sas.out"
}

ss_ping() { # ping b from a, over the transport-mode SA
	ip netns exec "$SS_NS_A" ping -c 2 -W 2 -i 0.3 "$SS_IP_B" >"$SS_DIR/ping.out" 2>&1
}

# ESP (not plain ICMP) carried the ping: the SA's packet counters moved.
ss_esp_used() {
	ip -n "$SS_NS_A" -s xfrm state >"$SS_DIR/xfrm.out" 2>&1 &&
	awk '/lifetime current:/ { getline; if ($1 + 0 > 0) n++ } END { exit !(n > 0) }' \
		"$SS_DIR/xfrm.out"
}

ss_cleanup() {
	ss_stop a
	ss_stop b
	ip netns del "$SS_NS_A" 2>/dev/null
	ip netns del "$SS_NS_B" 2>/dev/null
}

# Print the tail of both logs as TAP comments (after a failure).
ss_dump_logs() {
	local s
	for s in a b; do
		echo "# --- charon $s log (tail) ---"
		tail -n "${1:-25}" "$SS_DIR/$s/charon.log" 2>/dev/null | sed 's/^/#   /'
	done
	[ -f "$SS_DIR/initiate.out" ] && sed 's/^/#   initiate: /' "$SS_DIR/initiate.out" | tail -n 15
}
