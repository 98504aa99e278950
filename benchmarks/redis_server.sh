#!/usr/bin/env bash
# A throwaway redis-server for the benchmark suite, on 127.0.0.1 only, with no persistence.
#
#   benchmarks/redis_server.sh start   installs redis-server with apt-get if it is missing, starts it on a free
#                                      port and prints that port (it reuses a server this script already started)
#   benchmarks/redis_server.sh stop    stops the server started by `start` (by the pid in its pidfile)
#
# State lives under the repository's .cache/: redis-bench.pid, redis-bench.port, redis-bench.log.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="$repo/.cache"
pidfile="$state/redis-bench.pid"
portfile="$state/redis-bench.port"
logfile="$state/redis-bench.log"

note() { echo "redis_server.sh: $*" >&2; }

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

install() {
    command -v redis-server >/dev/null && return 0
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        note "redis-server is not installed and cannot be installed here (needs root and apt-get)"
        return 1
    fi
    note "installing redis-server with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends redis-server >&2
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
    local port
    port="$(free_port)"
    rm -f "$pidfile"
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes --daemonize yes \
        --pidfile "$pidfile" --logfile "$logfile" --dir "$state" --save "" --appendonly no >&2
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
        rm -f "$pidfile" "$portfile"
        return 0
    fi
    local pid
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$pidfile" "$portfile"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
