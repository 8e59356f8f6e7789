#!/bin/sh
# bench.sh - `make bench`: ternd against Postfix, side by side, with the load
# generator in ../shared/bench (private network namespace, loopback only).
# BENCH_ARGS overrides the workloads and repeats (default: -r 3 -w mem,fsync,a,b,d).
set -e
[ "$(id -u)" = 0 ] || { echo "make bench needs root (network namespace, Postfix)" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$top/../shared/bench}
[ -x "$BENCH/run-anchors.sh" ] || { echo "no benchmark kit at $BENCH" >&2; exit 2; }

if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "ok installed" ||
   ! command -v strace >/dev/null || ! command -v bc >/dev/null; then
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix strace bc util-linux >/dev/null
fi
make -s -C "$BENCH"

# The target writes its configuration from the kit's variables, then runs
# ternd in the foreground: same durability as Postfix (fsync before 250,
# fsync of the delivered Maildir file), one Maildir for bench.test, and
# remote.test relayed from loopback to the kit's smtp-sink (as Postfix's
# mynetworks and transport_maps do there).
TARGET="tern=set -e
chown -R nobody: \"\$BENCH_MAILDIR\" \"\$BENCH_SPOOL\"
chmod 600 \"\$BENCH_KEY\"
cat > \"\$BENCH_WORKDIR/ternd.conf\" <<CONF
hostname mx.bench.test
domains \$BENCH_DOMAIN
data_dir \$BENCH_SPOOL
user nobody
listen 127.0.0.1:\$BENCH_PORT mx
deliver maildir \$BENCH_MAILDIR
max_connections 5000
max_connections_per_ip 5000
tls_cert \$BENCH_CERT
tls_key \$BENCH_KEY
trusted_networks 127.0.0.0/8
transport \$BENCH_REMOTE_DOMAIN [127.0.0.1]:\$BENCH_RELAY_PORT
log_level warn
CONF
exec $top/build/rel/ternd -f \"\$BENCH_WORKDIR/ternd.conf\""

# shellcheck disable=SC2086
exec "$BENCH/run-anchors.sh" ${BENCH_ARGS:--r 3 -w mem,fsync,a,b,d} postfix --target "$TARGET"
