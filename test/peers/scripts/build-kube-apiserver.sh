#!/usr/bin/env bash
# Builds kube-apiserver v1.20.2 from Debian bookworm's own `kubernetes` source package with Debian's
# Go 1.19 and caches the binary outside the repository. A cached binary is reused (≈0 s).
# Patch: the vendored reflect2 1.0.1 / json-iterator crash under Go 1.19 when decoding custom
# resources; they are swapped for Debian's reflect2 1.0.2 / json-iterator 1.1.12.
set -euo pipefail
cache=${FLUX_BOOTSTRAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flux-bootstrap-test}
bin="$cache/kube-apiserver-v1.20.2"
# kubectl of the same release: the benchmarks compare our apply and reads with it.
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "kube-apiserver is not built yet ($bin/kube-apiserver) and this is not root." >&2
  echo "Run as root: $(cd "$(dirname "$0")" && pwd)/install-system-deps.sh, or set KUBEBUILDER_ASSETS." >&2
  exit 3
fi
srcver=1.20.5+really1.20.2-1.1+deb12u1
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list 2>/dev/null; then
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  cat > /etc/apt/sources.list.d/debian-src.sources <<SRC
Types: deb-src
URIs: $uri
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq
fi
build=$(mktemp -d "${TMPDIR:-/tmp}/kube-apiserver-build.XXXXXX")
trap 'rm -rf "$build"' EXIT
echo "Building kube-apiserver and kubectl v1.20.2 from Debian source into $bin (about 4 minutes, once)..." >&2
cd "$build"
apt-get source -qq kubernetes="$srcver" >/dev/null 2>&1
cd kubernetes-1.20.5+really1.20.2
R=vendor/github.com/modern-go/reflect2; J=vendor/github.com/json-iterator/go
rm -f $R/*.go $R/*.s $J/*.go
find /usr/share/gocode/src/github.com/modern-go/reflect2 -maxdepth 1 \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' -exec cp {} $R/ \;
find /usr/share/gocode/src/github.com/json-iterator/go -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} $J/ \;
export PATH=/usr/lib/go-1.19/bin:$PATH CGO_ENABLED=0 GOPROXY=off GOFLAGS= HOME="$build/home"
mkdir -p "$HOME"
make WHAT="cmd/kube-apiserver cmd/kubectl" >"$build/make.log" 2>&1 || { tail -50 "$build/make.log" >&2; exit 1; }
for b in kube-apiserver kubectl; do
  install -D -m0755 "_output/bin/$b" "$bin/$b.tmp"
  mv "$bin/$b.tmp" "$bin/$b"
  echo "$b built: $bin/$b" >&2
done
