# Shared helpers for the project's scripts. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

APT_UPDATED=""
# apt_install PKG...: installs Debian packages that are missing, refreshing lists once.
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z "$APT_UPDATED" ]]; then
        log "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ensure_rust: cargo must be on PATH (rustup's default location is tried too).
ensure_rust() {
    if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null || die "cargo not found: this project needs a Rust toolchain (rustup)"
}

# ensure_build_deps: what the Rust build and the tests need from Debian.
ensure_build_deps() {
    apt_install gcc pkg-config ca-certificates curl python3 python3-pip
}

PG_PORT=5432
pg_up() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }

# ensure_postgres: PostgreSQL answering on 127.0.0.1:5432 with trust auth for
# user postgres and a database `test`. Starts the machine's cluster if there is
# one; otherwise installs Debian's postgresql and runs a private instance.
ensure_postgres() {
    if ! command -v pg_isready >/dev/null; then
        apt_install postgresql
    fi
    if ! pg_up; then
        local clusters
        clusters="$(ls /etc/postgresql 2>/dev/null | head -n1 || true)"
        if [[ -n "$clusters" ]] && command -v pg_ctlcluster >/dev/null; then
            log "starting PostgreSQL cluster $clusters/main"
            pg_ctlcluster --skip-systemctl-redirect "$clusters" main start 2>/dev/null || pg_ctlcluster "$clusters" main start || true
        fi
    fi
    if ! pg_up; then
        start_private_postgres
    fi
    for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
    pg_up || die "PostgreSQL did not come up on 127.0.0.1:$PG_PORT"
    if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc 'create database test' >/dev/null 2>&1 || true
    fi
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d test -Atc 'select 1' >/dev/null \
        || die "cannot connect to postgres://postgres@127.0.0.1:$PG_PORT/test (trust auth expected)"
}

start_private_postgres() {
    local bin data
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    [[ -n "$bin" ]] || die "PostgreSQL server binaries not found after install"
    data="$ROOT/.tools/pgdata"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        log "initialising a private PostgreSQL in $data"
        mkdir -p "$data"
        chown -R postgres:postgres "$data" 2>/dev/null || true
        runuser -u postgres -- "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
    fi
    log "starting the private PostgreSQL on 127.0.0.1:$PG_PORT"
    runuser -u postgres -- "$bin/pg_ctl" -w -D "$data" -l "$data/server.log" \
        -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1" start >/dev/null
}

# ensure_nextest: prefer cargo-nextest (parallel, per-test processes).
have_nextest() { cargo nextest --version >/dev/null 2>&1; }
