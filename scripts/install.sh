#!/usr/bin/env bash
# Builds Tessera and installs it into the PostgreSQL that PG_CONFIG names, without crashing
# servers that have the library loaded: every file is written under a temporary name and
# renamed into place, so a running server keeps the old file it mapped. Restart servers to
# pick up the new code (scripts/cluster.sh restart). Only Tessera's own files are written.
#
#   scripts/install.sh            release build (fat LTO)
#   scripts/install.sh --debug    debug build, for quick edit-and-test cycles
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
export PATH="$HOME/.cargo/bin:$PATH"
cd "$(dirname "$0")/.."

mode=release
args=()
if [ "${1:-}" = "--debug" ]; then
    mode=debug
    args+=(--debug)
fi
out="target/$mode/tessera-pg$PG_MAJOR"
echo "==> cargo pgrx package ($mode, pg$PG_MAJOR)"
log=$(mktemp)
if ! cargo pgrx package --pg-config "$PG_CONFIG" "${args[@]}" --no-default-features --features "pg$PG_MAJOR" >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
rm -f "$log"

pkglibdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)

# place SRC DEST MODE: copy to DEST's directory under a temporary name, then rename over DEST.
place() {
    local src=$1 dest=$2 tmp
    # Unchanged: leave it (and its time stamp, so running servers are not restarted for nothing).
    if cmp -s "$src" "$dest"; then
        return
    fi
    tmp="$(dirname "$dest")/.$(basename "$dest").new.$$"
    install -m "$3" "$src" "$tmp"
    mv -f "$tmp" "$dest"
}

place "$out$pkglibdir/tessera.so" "$pkglibdir/tessera.so" 755
for f in "$out$sharedir"/extension/tessera*; do
    place "$f" "$sharedir/extension/$(basename "$f")" 644
done
echo "==> installed tessera ($mode) into $pkglibdir and $sharedir/extension"
