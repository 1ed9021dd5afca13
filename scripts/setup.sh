#!/usr/bin/env bash
# Installs, on a Debian bookworm machine as root, whatever Tessera needs to build, test and run:
# Debian packages, cargo-pgrx (pinned), `cargo pgrx init` for the target PostgreSQL, and pgvector
# built from Debian's source package against that PostgreSQL. Idempotent: each step checks first.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config}
PGRX_VERSION=0.18.1
PGVECTOR_VERSION=0.8.0
STATE_DIR=${TESSERA_SETUP_DIR:-/var/tmp/tessera-setup}

say() { printf '==> %s\n' "$*"; }

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh installs system packages and must run as root (it does not use sudo)." >&2
        exit 1
    fi
}

apt_packages() {
    local pkgs=(postgresql-"$PG_MAJOR" postgresql-server-dev-"$PG_MAJOR" postgresql-contrib
        libpq-dev libclang-dev clang build-essential pkg-config sudo dpkg-dev ca-certificates sqlsmith
        pgbench-placeholder)
    # pgbench ships inside postgresql-client-$PG_MAJOR; drop the placeholder.
    pkgs=("${pkgs[@]/pgbench-placeholder/postgresql-client-$PG_MAJOR}")
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "apt packages: all present"
        return
    fi
    say "apt packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

cargo_pgrx() {
    export PATH="$HOME/.cargo/bin:$PATH"
    if cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
        say "cargo-pgrx $PGRX_VERSION: present"
    else
        say "cargo-pgrx $PGRX_VERSION: installing (several minutes)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    if grep -q "pg${PG_MAJOR} = \"${PG_CONFIG}\"" "$HOME/.pgrx/config.toml" 2>/dev/null; then
        say "cargo pgrx init: done already for pg$PG_MAJOR"
    else
        say "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
        cargo pgrx init --pg"$PG_MAJOR" "$PG_CONFIG"
    fi
}

pgvector() {
    local sharedir
    sharedir=$("$PG_CONFIG" --sharedir)
    if [ -f "$sharedir/extension/vector--${PGVECTOR_VERSION}.sql" ] && [ -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]; then
        say "pgvector $PGVECTOR_VERSION: present"
        return
    fi
    say "pgvector $PGVECTOR_VERSION: building from Debian's source package"
    # The mirror is the one this machine's apt already uses; no host is written here.
    local uri
    uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')
    if [ -z "$uri" ]; then
        uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}')
    fi
    if [ -z "$uri" ]; then
        echo "setup.sh: cannot find a Debian mirror in this machine's apt configuration" >&2
        exit 1
    fi
    local d="$STATE_DIR/pgvector-apt"
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$STATE_DIR/src"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" >"$d/sources.list"
    local apt=(apt-get -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache")
    "${apt[@]}" update -qq
    (
        cd "$STATE_DIR/src"
        rm -rf pgvector-*/ ./*.dsc ./*.tar.* 2>/dev/null || true
        "${apt[@]}" source --download-only pgvector
        dpkg-source -x pgvector_*.dsc
        cd pgvector-*/
        make -s PG_CONFIG="$PG_CONFIG"
        make -s install PG_CONFIG="$PG_CONFIG"
    )
    [ -f "$sharedir/extension/vector--${PGVECTOR_VERSION}.sql" ] || {
        echo "setup.sh: pgvector installed, but not version $PGVECTOR_VERSION (Debian's source moved on?)" >&2
        ls "$sharedir"/extension/vector--*.sql >&2
    }
}

need_root
apt_packages
cargo_pgrx
pgvector
say "setup complete"
