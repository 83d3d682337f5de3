#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (real peers: sshd, etcd, git http-backend,
# Chromium with an emoji font — Backstage shows booleans as emoji on the template review page —,
# PostgreSQL, Redis, tinyproxy for the proxy suite) and builds kube-apiserver when no KUBEBUILDER_ASSETS folder is given.
# Needs root. Idempotent: packages already present are not reinstalled, a cached build is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

packages=(git openssh-server openssh-client etcd-server chromium fonts-noto-color-emoji postgresql ca-certificates openssl curl redis-server tinyproxy)
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  packages+=(golang-1.19-go make rsync dpkg-dev golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing system packages: ${missing[*]}" >&2
    echo "The tests need them; install them as root (sudo $0) or with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts services on install; the tests run their own loopback instances.
  for svc in ssh etcd postgresql redis-server tinyproxy; do
    (systemctl stop "$svc" 2>/dev/null || service "$svc" stop 2>/dev/null) >/dev/null 2>&1 || true
  done
fi

# Login user of the sshd test peer (git over SSH runs as this user when the tests run as root).
# Its password field must be "*" (no password, not locked): sshd refuses locked accounts when PAM is off.
if [ "$(id -u)" = 0 ]; then
  if ! getent passwd git >/dev/null; then
    mkdir -p /var/lib/flux-bootstrap-git
    useradd --system --shell /bin/sh --home-dir /var/lib/flux-bootstrap-git --no-create-home git
    chown git: /var/lib/flux-bootstrap-git
  fi
  case "$(getent shadow git | cut -d: -f2)" in
    '!'*) usermod -p '*' git ;;
  esac
fi

if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  "$here/build-kube-apiserver.sh"
fi
