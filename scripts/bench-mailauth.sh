#!/bin/bash
# bench-mailauth.sh - the two costs of issue 5, measured with the load
# generator of ../shared/bench (smtpload) in a private network namespace:
#
#  inbound   ternd on port 25 with mail_auth off vs on (SPF, DKIM, DMARC for
#            every message, `mail_auth_ignore none`, no trusted_networks,
#            DNS answered by a local stub).  smtpload cannot send a given
#            (pre-signed) message: it writes its own headers with a new
#            Subject and Message-ID per message.  So two workloads:
#              chain:  smtpload -> ternd S (submission, AUTH, dkim_sign
#                      sender.test, RSA 2048) -> ternd V (mx, measured) ->
#                      Maildir.  V sees DKIM-signed mail: spf=pass
#                      dkim=pass dmarc=pass.  S is the same in both runs.
#              direct: smtpload -> ternd V.  spf=pass dkim=none dmarc=pass
#                      (SPF and DMARC real, no signature to verify).
#  outbound  ternd S (submission, AUTH PLAIN over loopback plaintext,
#            transport remote.test -> smtp-sink) with dkim_sign vs without.
#
# Each comparison: REPEATS pairs, off/on interleaved (order alternates per
# repeat), a fresh spool and a fresh ternd per run.  Before the timed runs,
# a short run at log_level info checks that every message got
# spf=pass dkim=pass dmarc=pass (chain), spf=pass dmarc=pass (direct) and
# dkim=signed (outbound); the script stops if not.
#
# Usage (root): scripts/bench-mailauth.sh
#   env: REPEATS (3), DUR seconds per run (15), N max messages per run
#        (60000), CONC sessions (10), AUTH_M messages per AUTH session
#        (1000), OUT results dir,
#        BENCH kit dir (../shared/bench)
# Results: $OUT/results.tsv, $OUT/summary.md (medians and on/off ratios).
set -u
[ "$(id -u)" = 0 ] || { echo "bench-mailauth.sh needs root (network namespace)" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$top/../shared/bench}
BENCH=$(cd "$BENCH" && pwd) || { echo "no benchmark kit" >&2; exit 2; }
ANCHORS=${ANCHORS:-/var/tmp/tern-bench}
REPEATS=${REPEATS:-3} DUR=${DUR:-15} N=${N:-60000} CONC=${CONC:-10} AUTH_M=${AUTH_M:-1000}

if [ "${MAILAUTH_IN_NS:-}" != 1 ]; then
	make -s -C "$top" all || exit 1
	make -s -C "$BENCH" >/dev/null || exit 1
	command -v smtp-sink >/dev/null || { echo "needs smtp-sink (apt-get install postfix)" >&2; exit 2; }
	[ -f /usr/share/publicsuffix/public_suffix_list.dat ] ||
		{ echo "needs the Public Suffix List (apt-get install publicsuffix): DMARC is off without it" >&2; exit 2; }
	export MAILAUTH_IN_NS=1 REPEATS DUR N CONC AUTH_M BENCH ANCHORS
	exec unshare -n -m --propagation private bash "$0" "$@"
fi
ip link set lo up
source "$BENCH/lib.sh"

TERND=$top/build/rel/ternd TERN=$top/build/rel/tern SMTPLOAD=$BENCH/smtpload
W=$ANCHORS/perf-mailauth
OUT=${OUT:-$ANCHORS/perf-results/mailauth-$(date +%Y%m%d-%H%M%S)}
RES=$OUT/results.tsv
P_V=12301 P_S=12311 P_SINK=12201 P_DNS=12353
HZ=$(getconf CLK_TCK)
rm -rf "$W"; mkdir -p "$W" "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
echo "# bench-mailauth $(date -u +%FT%TZ) repeats=$REPEATS duration=$DUR n=$N c=$CONC out=$OUT"
echo "# ternd $(git -C "$top" describe --always --dirty 2>/dev/null)"

# ---------- processes we start, stopped by PID (process group) on exit ----------
declare -A PGID=()
start_bg() { # name logfile cmd... : own process group, foreground program
	local name=$1 log=$2; shift 2
	setsid "$@" > "$log" 2>&1 &
	PGID[$name]=$!
}
stop_bg() { # name
	local pid=${PGID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM -- -"$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL -- -"$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "PGID[$1]"
}
cleanup() { for n in "${!PGID[@]}"; do stop_bg "$n"; done; }
trap cleanup EXIT
trap 'echo interrupted; exit 130' INT TERM

# ---------- keys, users, DNS zone ----------
"$TERN" dkim keygen sender.test --selector s -d "$W" > /dev/null || exit 1
KEY=$W/sender.test.s.key
PUB=$(openssl pkey -in "$KEY" -pubout -outform DER 2>/dev/null | base64 -w0)
[ -n "$PUB" ] || { echo "cannot read $KEY"; exit 1; }
printf 'benchpw\n' | "$TERN" user add bench@sender.test --scheme plain -f "$W/users" > /dev/null || exit 1

cat > "$W/zone.txt" <<EOF
sender.test v=spf1 ip4:127.0.0.1 -all
mta.sender.test v=spf1 ip4:127.0.0.1 -all
s._domainkey.sender.test v=DKIM1; k=rsa; p=$PUB
_dmarc.sender.test v=DMARC1; p=reject; adkim=r; aspf=r
EOF
# A UDP DNS server for TXT records from zone.txt ("name text" lines), TTL
# 300; every other question: NXDOMAIN.  Counts queries (printed on SIGTERM).
cat > "$W/dns.py" <<'EOF'
import signal, socket, struct, sys
port, zonefile = int(sys.argv[1]), sys.argv[2]
zone = {}
for line in open(zonefile):
    name, _, text = line.rstrip("\n").partition(" ")
    zone[name.lower()] = text.encode()
n = [0]
def bye(*a):
    print("dns: %d queries" % n[0], flush=True); sys.exit(0)
signal.signal(signal.SIGTERM, bye)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
while True:
    data, addr = s.recvfrom(4096)
    if len(data) < 17:
        continue
    n[0] += 1
    qid, flags = struct.unpack(">HH", data[:4])
    i, labels = 12, []
    while i < len(data) and data[i] != 0:
        l = data[i]; labels.append(data[i + 1:i + 1 + l].decode("ascii", "replace")); i += 1 + l
    qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
    q = data[12:i + 5]
    name = ".".join(labels).lower()
    print("dns: %s %d" % (name, qtype), flush=True)
    rd = flags & 0x0100
    if name in zone and qtype == 16:
        t = zone[name]
        rdata = b"".join(bytes([len(t[k:k + 255])]) + t[k:k + 255] for k in range(0, len(t), 255))
        ans = struct.pack(">HHHIH", 0xC00C, 16, 1, 300, len(rdata)) + rdata
        s.sendto(struct.pack(">HHHHHH", qid, 0x8400 | rd, 1, 1, 0, 0) + q + ans, addr)
    elif name in zone or name.endswith("sender.test"):
        s.sendto(struct.pack(">HHHHHH", qid, 0x8400 | rd, 1, 0, 0, 0) + q, addr)  # NODATA
    else:
        s.sendto(struct.pack(">HHHHHH", qid, 0x8400 | rd | 3, 1, 0, 0, 0) + q, addr)  # NXDOMAIN
EOF
start_bg dns "$OUT/dns.log" python3 -u "$W/dns.py" $P_DNS "$W/zone.txt"

# ---------- ternd configurations ----------
# V: the receiving MX (measured inbound), mail_auth $1, log level $2.
conf_v() {
	cat <<EOF
hostname mx.bench.test
domains bench.test
data_dir $W/v/spool
user nobody
listen 127.0.0.1:$P_V mx tls none
deliver maildir $W/v/mail/bench
max_connections 5000
max_connections_per_ip 5000
dns_server 127.0.0.1:$P_DNS
mail_auth $1
mail_auth_ignore none
log_level $2
EOF
}
# S: a submission server; AUTH PLAIN over loopback plaintext, relays
# $1 to $2 (transport), signs for sender.test when $3 = on; log level $4.
conf_s() {
	cat <<EOF
hostname mta.sender.test
domains sender.test
data_dir $W/s/spool
user nobody
listen 127.0.0.1:$P_S submission tls none auth required plaintext_auth loopback
users $W/users
auth_mechanisms PLAIN
transport $1 [127.0.0.1]:$2
dns_server 127.0.0.1:$P_DNS
max_connections 5000
max_connections_per_ip 5000
log_level $4
EOF
	[ "$3" = on ] && echo "dkim_sign sender.test s $KEY"
}
start_ternd() { # name(v|s) conf-text
	local d=$W/$1
	rm -rf "$d"; mkdir -p "$d/spool" "$d/mail/bench/new" "$d/mail/bench/cur" "$d/mail/bench/tmp"
	chown -R nobody: "$d/spool" "$d/mail"
	printf '%s\n' "$2" > "$d/ternd.conf"
	start_bg "$1" "$d/ternd.log" "$TERND" -f "$d/ternd.conf"
	wait_port $([ "$1" = v ] && echo $P_V || echo $P_S) 20 || { cat "$d/ternd.log"; return 1; }
}
start_sink() {
	start_bg sink "$W/sink.out" smtp-sink -u nobody -m 1000 -c 127.0.0.1:$P_SINK 1024
	wait_port $P_SINK 10
}
sink_count() { local g; g=$(tail -c 300 "$W/sink.out" | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1); echo "${g:-0}"; }
maildir_count() { ls -f "$W/v/mail/bench/new" 2>/dev/null | grep -vc '^\.'; }
wait_count() { # counter-function want : until reached, or 20 s without progress, or 120 s
	local f=$1 want=$2 n last=-1 still=0
	for _ in $(seq 600); do
		n=$($f); [ "$n" -ge "$want" ] && break
		if [ "$n" = "$last" ]; then still=$((still + 1)); [ $still -ge 100 ] && break; else still=0; last=$n; fi
		sleep 0.2
	done
	echo "$n"
}
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

# Every AUTH costs ternd one yescrypt and one SCRAM derivation (~100 ms of
# CPU, by design: users.c spends both whatever the scheme), so the AUTH
# sessions carry AUTH_M messages each; the direct runs send one per session.
AUTHARGS=(-u bench@sender.test -w benchpw -f bench@sender.test -m "$AUTH_M")
# one measured run: workload(chain|direct|sign) setting(off|on) rep loglevel n duration
run_one() {
	local wl=$1 set=$2 rep=$3 ll=$4 n=$5 dur=$6 port args=() count measured
	stop_bg v; stop_bg s; stop_bg sink
	case $wl in
	chain)
		start_ternd v "$(conf_v "$set" "$ll")" || return 1
		start_ternd s "$(conf_s bench.test $P_V on "$ll")" || return 1
		port=$P_S; args=("${AUTHARGS[@]}" -T 'r%d@bench.test'); count=maildir_count; measured=v ;;
	direct)
		start_ternd v "$(conf_v "$set" "$ll")" || return 1
		port=$P_V; args=(-f bench@sender.test --helo mta.sender.test -T 'r%d@bench.test'); count=maildir_count; measured=v ;;
	sign)
		start_sink || return 1
		start_ternd s "$(conf_s remote.test $P_SINK "$set" "$ll")" || return 1
		port=$P_S; args=("${AUTHARGS[@]}" -T 'r%d@remote.test'); count=sink_count; measured=s ;;
	esac
	sleep 1
	local mpid=${PGID[$measured]} opid=""
	[ $wl = chain ] && opid=${PGID[s]}
	local m0 o0 c0 t0 out line ok got t1 m1 o1 c1
	m0=$(tree_cpu_ticks "$mpid"); o0=$([ -n "$opid" ] && tree_cpu_ticks "$opid" || echo 0)
	c0=$(cpu_busy); t0=$(date +%s.%N)
	out=$("$SMTPLOAD" -p $port -n "$n" --duration "$dur" --max-time 120 -c "$CONC" -m 1 -s 4096 -r 1 -t none \
		"${args[@]}" -l "$wl-$set" 2>&1)
	line=$(echo "$out" | grep '^RESULT' | tail -1)
	ok=$(echo "$line" | sed -n 's/.* ok=\([0-9]*\).*/\1/p'); ok=${ok:-0}
	got=$(wait_count $count "$ok")
	t1=$(date +%s.%N); c1=$(cpu_busy)
	m1=$(tree_cpu_ticks "$mpid"); o1=$([ -n "$opid" ] && tree_cpu_ticks "$opid" || echo 0)
	local rate mcpu ocpu mach acc
	rate=$(echo "$got $t0 $t1" | awk '{printf "%.1f", $1/($3-$2)}')
	mcpu=$(echo "$m0 $m1 $got $HZ" | awk '{if ($3>0) printf "%.3f", ($2-$1)/$4*1000/$3; else print "nan"}')
	ocpu=$(echo "$o0 $o1 $got $HZ" | awk '{if ($3>0) printf "%.3f", ($2-$1)/$4*1000/$3; else print "nan"}')
	mach=$(echo "$c0 $c1" | awk '{b=$3-$1; t=$4-$2; if (t>0) printf "%.0f", 100*b/t; else print 0}')
	acc=$(echo "$line" | grep -o 'msgs_per_s=[^ ]*' | cut -d= -f2)
	printf "%s\t%s\t%s\t%s\tdelivered=%s e2e_per_s=%s server_cpu_ms_per_msg=%s other_cpu_ms_per_msg=%s machine_cpu_pct=%s\n" \
		"$wl" "$set" "$rep" "$line" "$got" "$rate" "$mcpu" "$ocpu" "$mach" >> "$RES.$ll"
	echo "  -> $wl $set r$rep: accepted $ok at ${acc:-?}/s $(echo "$line" | grep -o ' errors=[^ ]*'), delivered $got: $rate/s end to end; ternd $measured CPU $mcpu ms/msg$([ -n "$opid" ] && echo ", ternd s $ocpu ms/msg"); machine ${mach}%"
	[ "$ok" -gt 0 ] || echo "$out" | sed 's/^/     /'
	stop_bg v; stop_bg s; stop_bg sink
}

# ---------- 1. verification at log_level info ----------
echo "== check: every message authenticated / signed (log_level info, 30 messages each)"
fail=0
check() { # what file pattern want
	local got; got=$(grep -c -- "$3" "$2")
	echo "  $1: $got of $4 log lines with '$3'"
	[ "$got" -ge "$4" ] || fail=1
}
run_one chain on 0 info 30 30 > /dev/null
check "chain, V (inbound)" "$W/v/ternd.log" "event=queued .* spf=pass dkim=pass dmarc=pass" 30
check "chain, S (signer)" "$W/s/ternd.log" "dkim=signed d=sender.test s=s a=rsa-sha256" 30
grep -m1 'spf=pass dkim=pass dmarc=pass' "$W/v/ternd.log" | sed 's/^/    /'
run_one direct on 0 info 30 30 > /dev/null
check "direct, V" "$W/v/ternd.log" "event=queued .* spf=pass dkim=none dmarc=pass" 30
run_one direct off 0 info 30 30 > /dev/null
echo "  direct, mail_auth off: $(grep -c 'spf=' "$W/v/ternd.log") log lines with spf= (want 0)"
run_one sign on 0 info 30 30 > /dev/null
check "outbound, S" "$W/s/ternd.log" "dkim=signed d=sender.test s=s a=rsa-sha256" 30
run_one sign off 0 info 30 30 > /dev/null
echo "  outbound, no dkim_sign: $(grep -c 'dkim=signed' "$W/s/ternd.log") signed (want 0)"
[ $fail = 0 ] || { echo "check failed: see $W/*/ternd.log"; exit 1; }

# ---------- 2. timed runs, off/on interleaved ----------
for rep in $(seq "$REPEATS"); do
	if [ $((rep % 2)) = 1 ]; then order="off on"; else order="on off"; fi
	for wl in chain direct sign; do
		echo "== rep $rep: $wl"
		for set in $order; do run_one $wl $set $rep warn "$N" "$DUR"; done
	done
done
mv "$RES.warn" "$RES"
echo "== DNS: $(grep -c '^dns: [a-z_]' "$OUT/dns.log") queries during the whole run (ternd caches for the TTL, 300 s)"

# ---------- 3. summary ----------
python3 - "$RES" > "$OUT/summary.md" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    wl, st, rep, res, extra = line.rstrip("\n").split("\t")
    d = dict(t.split("=", 1) for t in (res + " " + extra).split() if "=" in t)
    rows.setdefault((wl, st), []).append(d)
def med(wl, st, k):
    v = [float(d[k]) for d in rows.get((wl, st), []) if d.get(k) not in (None, "nan", "-")]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
def cell(m, nd=0):
    return "-" if m is None else f"{m[0]:.{nd}f} [{m[1]:.{nd}f}-{m[2]:.{nd}f}]"
def ratio(a, b):
    return "-" if a is None or b is None or b[0] == 0 else f"{a[0] / b[0]:.2f}"
names = {"chain": ("inbound, DKIM-signed (smtpload -> ternd S signs -> ternd V)", "mail_auth"),
         "direct": ("inbound, unsigned (smtpload -> ternd V)", "mail_auth"),
         "sign": ("outbound relay to smtp-sink, AUTH", "dkim_sign")}
print("| workload | knob | metric | off | on | on/off |")
print("|---|---|---|---|---|---|")
for wl, (title, knob) in names.items():
    for k, label, nd in (("msgs_per_s", "accepted msgs/s", 0), ("e2e_per_s", "delivered msgs/s, end to end", 0),
                         ("server_cpu_ms_per_msg", "measured ternd CPU ms/msg", 3),
                         ("other_cpu_ms_per_msg", "ternd S CPU ms/msg", 3), ("gen_cpu_pct", "smtpload CPU %", 0),
                         ("machine_cpu_pct", "machine CPU % of 2 cores", 0)):
        if k == "other_cpu_ms_per_msg" and wl != "chain":
            continue
        a, b = med(wl, "off", k), med(wl, "on", k)
        if a is None and b is None:
            continue
        print(f"| {title} | {knob} | {label} | {cell(a, nd)} | {cell(b, nd)} | {ratio(b, a)} |")
n = min(len(v) for v in rows.values())
print(f"\nMedians of {n} runs each, [min-max]; off and on interleaved.")
EOF
cat "$OUT/summary.md"
echo "# results in $OUT"
