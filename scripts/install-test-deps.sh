#!/usr/bin/env bash
# Installs what knet's tests need on a fresh Debian machine (run as root; CI runs it from
# `make test`). Each package is checked first so a warm machine spends no time here.
set -euo pipefail

pkgs=(iptables nftables ipset ipvsadm iproute2 conntrack qemu-system-x86 cpio kmod busybox-static)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-test-deps: missing ${missing[*]} and not root; tests that need them will skip and say why" >&2
		exit 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
