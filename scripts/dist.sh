#!/usr/bin/env bash
# Builds the release tarball: a static, stripped `rollbridge` for x86_64
# Linux plus completions, the man page, the systemd units, LICENSE and a
# SHA-256 sum.
#
#   scripts/dist.sh [out-dir]        (default: target/dist)
#
# The binary is musl-static when the x86_64-unknown-linux-musl target is
# installed (rustup target add x86_64-unknown-linux-musl), else glibc with
# crt-static. Both run on any x86_64 Linux; the glibc one never calls NSS
# (owner/group names are read from /etc/passwd and /etc/group directly).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/dist}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
name="rollbridge-$version-x86_64-linux"

if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  target=x86_64-unknown-linux-musl
  libc=musl
  ROLLBRIDGE_COMMIT="$commit" cargo build --release --locked --target "$target"
else
  target=x86_64-unknown-linux-gnu
  libc="glibc, statically linked (crt-static)"
  ROLLBRIDGE_COMMIT="$commit" RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target "$target"
fi
bin="target/$target/release/rollbridge"
case "$(ldd "$bin" 2>&1 || true)" in
  *"statically linked"*|*"not a dynamic executable"*) ;;
  *) echo "dist: $bin is dynamically linked" >&2; exit 1 ;;
esac

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
dir="$stage/$name"
mkdir -p "$dir/completions" "$dir/man" "$dir/systemd"
cp "$bin" "$dir/rollbridge"
strip "$dir/rollbridge" 2>/dev/null || true
"$dir/rollbridge" completion bash > "$dir/completions/rollbridge.bash"
"$dir/rollbridge" completion zsh > "$dir/completions/_rollbridge"
"$dir/rollbridge" completion fish > "$dir/completions/rollbridge.fish"
"$dir/rollbridge" man > "$dir/man/rollbridge.1"
if compgen -G "examples/systemd/*" > /dev/null; then
  cp examples/systemd/* "$dir/systemd/"
else
  rmdir "$dir/systemd"
fi
cp LICENSE README.md "$dir/"
[ -f CHANGELOG.md ] && cp CHANGELOG.md "$dir/"
(cd "$dir" && sha256sum rollbridge > SHA256SUMS)
printf 'rollbridge %s (commit %s)\nbinary: %s, %s\n' "$version" "$commit" "$target" "$libc" > "$dir/BUILD"

mkdir -p "$out"
tarball="$out/$name.tar.gz"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$tarball" "$name"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "dist: $tarball ($libc)"
cat "$out/$name.tar.gz.sha256"
