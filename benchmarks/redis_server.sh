#!/usr/bin/env bash
# A throwaway redis-server for the benchmark suite, on 127.0.0.1 only, with no persistence.
#
#   benchmarks/redis_server.sh start [NAME [ARGS...]]   installs redis-server with apt-get if it is missing,
#                          starts it on a free port and prints that port (it reuses a server this script
#                          already started under NAME); ARGS are extra redis-server options
#   benchmarks/redis_server.sh stop [NAME]      stops the server started by `start` (by the pid in its pidfile)
#   benchmarks/redis_server.sh restart [NAME]   stops it and starts it again on the same port (tests of a
#                          server restart), with the ARGS it was started with
#   benchmarks/redis_server.sh install          only makes sure redis-server is installed (and openssl, which
#                          makes the certificates of the TLS tests)
#
# NAME defaults to "bench". State lives under the repository's .cache/: redis-NAME.pid, redis-NAME.port,
# redis-NAME.args, redis-NAME.log.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$repo/.cache"
name="${2:-bench}"
[[ "$name" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "redis_server.sh: bad NAME $name" >&2; exit 2; }
pidfile="$state/redis-$name.pid"
portfile="$state/redis-$name.port"
argsfile="$state/redis-$name.args"
logfile="$state/redis-$name.log"

note() { echo "redis_server.sh: $*" >&2; }

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

install() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v openssl >/dev/null || missing+=(openssl)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        note "${missing[*]} not installed and cannot be installed here (needs root and apt-get)"
        command -v redis-server >/dev/null
        return
    fi
    note "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

ping() {
    # RESP by hand, so that redis-cli is not needed.
    python3 - "$1" <<'EOF'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
EOF
}

start() {
    mkdir -p "$state"
    if running && [[ -f "$portfile" ]] && ping "$(cat "$portfile")"; then
        cat "$portfile"
        return 0
    fi
    install
    local port="${1:-}"
    [[ -n "$port" ]] || port="$(free_port)"
    shift || true
    : >"$argsfile"
    [[ $# -eq 0 ]] || printf '%s\n' "$@" >"$argsfile"
    rm -f "$pidfile"
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes --daemonize yes \
        --pidfile "$pidfile" --logfile "$logfile" --dir "$state" --save "" --appendonly no "$@" >&2
    for _ in $(seq 100); do
        if ping "$port"; then
            echo "$port" >"$portfile"
            echo "$port"
            return 0
        fi
        sleep 0.05
    done
    note "redis-server did not answer on 127.0.0.1:$port (see $logfile)"
    return 1
}

stop() {
    if ! running; then
        rm -f "$pidfile" "$portfile" "$argsfile"
        return 0
    fi
    local pid
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$pidfile" "$portfile" "$argsfile"
}

restart() {
    local port
    port="$(cat "$portfile")"
    local args=()
    [[ -s "$argsfile" ]] && mapfile -t args <"$argsfile"
    stop
    start "$port" "${args[@]}"
}

case "${1:-}" in
start) start "" "${@:3}" ;;
stop) stop ;;
restart) restart ;;
install) install ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
