#!/usr/bin/env bash
# Installs what knet's tests need on a fresh Debian machine (run as root; CI runs it from
# `make test`). Each package is checked first so a warm machine spends no time here.
set -euo pipefail

# chromium: compare's HTML report is rendered headless in a test.
pkgs=(iptables nftables ipset ipvsadm iproute2 conntrack qemu-system-x86 cpio kmod busybox-static chromium)
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

# The lab's VM (lab/vm) boots the Debian kernel package linux-image-amd64 depends on; fetch
# it once into knet's cache (lab/vm unpacks it and builds the initramfs on first use).
if command -v apt-cache >/dev/null && command -v apt-get >/dev/null; then
	kdep() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1; }
	kpkg=$(kdep)
	if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
		# A machine whose package lists were never fetched knows no kernel package yet.
		apt-get update -qq && kpkg=$(kdep)
	fi
	cache="${XDG_CACHE_HOME:-$HOME/.cache}/knet/deb"
	if [ -n "$kpkg" ] && ! ls "$cache/${kpkg}"_*.deb >/dev/null 2>&1; then
		mkdir -p "$cache"
		(cd "$cache" && apt-get download -q "$kpkg" 2>/dev/null) ||
			echo "install-test-deps: could not download $kpkg; lab VM tests will try again" >&2
	fi
fi
