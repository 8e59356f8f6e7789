#!/bin/sh
# install-deps.sh - install what tern needs to build, run and test, from
# Debian's packages. Used by `make run`, `make test` and `make fuzz`; quick
# when everything is there already (it asks dpkg first).
set -e
PKGS="build-essential clang pkg-config libuv1-dev libc-ares-dev libssl-dev
libcrypt-dev libcmocka-dev python3 python3-pytest swaks openssl iproute2
util-linux procps strace curl msmtp testssl.sh dovecot-core dovecot-lmtpd
dovecot-imapd python3-dnslib python3-aiosmtpd python3-yaml python3-cryptography
python3-dkim python3-pytest-xdist libpsl-dev publicsuffix python3-authres
opendkim-tools"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
