#!/usr/bin/env bash
# Runs every load-generator scenario against Corvid, Prosody and ejabberd on this machine and
# writes docs/benchmarks.md (issue #7). A benchmark, not a test: tests/run.sh does not call it.
#
#   bench/compare.sh                 # full counts (20,000 accounts, 3 runs each)
#   ACCOUNTS=1000 REPS=1 SCALE=small bench/compare.sh   # a quick pass
#
# Needs root (apt-get, the ejabberd user). Everything runs on loopback from $WORK; the Debian
# services apt may start are stopped, nothing else of the system is touched.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/corvid-bench}
ACCOUNTS=${ACCOUNTS:-20000}
REPS=${REPS:-3}
SCALE=${SCALE:-full}
SERVERS=${SERVERS:-"corvid prosody ejabberd"}
PASSWORD=bench-password
LOADGEN="$ROOT/target/release/corvid-loadgen"
CORVID="$ROOT/target/release/corvid"
RESULTS="$WORK/results.jsonl"
EJ_NODE=corvid-bench@localhost

if [ "$SCALE" = full ]; then
    LOGIN_N=20000; IDLE_S=10000; IDLE_HOLD=60; PAIRS=50; MSG_SECS=20; RATE=5000; CHURN=100000; CHURN_SAMPLE=5000
else
    LOGIN_N=2000; IDLE_S=$((ACCOUNTS < 1000 ? ACCOUNTS : 1000)); IDLE_HOLD=10; PAIRS=20; MSG_SECS=5; RATE=2000; CHURN=4000; CHURN_SAMPLE=500
fi

log() { echo "compare.sh: $*" >&2; }

install_servers() {
    if ! command -v prosody >/dev/null || ! command -v ejabberdctl >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prosody ejabberd lua-unbound
    fi
    # apt may have started the system instances: stop them (ours run privately).
    service prosody stop >/dev/null 2>&1 || true
    service ejabberd stop >/dev/null 2>&1 || true
}

prepare() {
    rm -rf "$WORK"
    mkdir -p "$WORK"/{cert,corvid/data,prosody/data,ejabberd/{conf,spool,logs}}
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost \
        -keyout "$WORK/cert/key.pem" -out "$WORK/cert/cert.pem" 2>/dev/null
    cat "$WORK/cert/key.pem" "$WORK/cert/cert.pem" > "$WORK/cert/both.pem"
    chmod 644 "$WORK/cert/"*.pem
    for f in corvid.toml prosody.cfg.lua ejabberd.yml; do
        sed "s|@WORK@|$WORK|g" "$ROOT/bench/$f" > "$WORK/$f"
    done
    cp /etc/ejabberd/ejabberdctl.cfg /etc/ejabberd/inetrc "$WORK/ejabberd/conf/"
    cp "$WORK/ejabberd.yml" "$WORK/ejabberd/conf/ejabberd.yml"
    chown -R ejabberd: "$WORK/ejabberd" "$WORK/cert"
    (cd "$ROOT" && cargo build --release -p corvid -p corvid-loadgen)
}

create_accounts() {
    log "creating $ACCOUNTS accounts on each server"
    seq 1 "$ACCOUNTS" | sed "s/.*/user&@localhost,$PASSWORD/" > "$WORK/users.csv"
    "$CORVID" --config "$WORK/corvid.toml" user import --csv "$WORK/users.csv" >&2
    # Prosody's internal_hashed store, written directly (prosodyctl register takes ~0.2 s each).
    python3 "$ROOT/bench/prosody_accounts.py" "$WORK/prosody/data" localhost "$ACCOUNTS" "$PASSWORD"
    ej_start
    seq 1 "$ACCOUNTS" | xargs -P 4 -I{} ejabberdctl $(ej_args) register "user{}" localhost "$PASSWORD" >/dev/null
    ej_stop
}

ej_args() { echo "--config-dir $WORK/ejabberd/conf --config $WORK/ejabberd/conf/ejabberd.yml --spool $WORK/ejabberd/spool --logs $WORK/ejabberd/logs --node $EJ_NODE"; }
ej_start() { ejabberdctl $(ej_args) start; ejabberdctl $(ej_args) started; }
ej_stop() { ejabberdctl $(ej_args) stop >/dev/null 2>&1 || true; ejabberdctl $(ej_args) stopped >/dev/null 2>&1 || true; }

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on port $1"; return 1
}

SERVER_PID=
start_server() {
    case $1 in
        corvid)
            "$CORVID" --config "$WORK/corvid.toml" serve > "$WORK/corvid/log" 2>&1 &
            SERVER_PID=$!; PORT=15222 ;;
        prosody)
            prosody --config "$WORK/prosody.cfg.lua" -F > "$WORK/prosody/stdout" 2>&1 &
            SERVER_PID=$!; PORT=25222 ;;
        ejabberd)
            ej_start
            SERVER_PID=$(pgrep -f -- "-sname $EJ_NODE\|-name $EJ_NODE\|$EJ_NODE" | head -1); PORT=35222 ;;
    esac
    wait_port "$PORT"
    sleep 1
}

stop_server() {
    case $1 in
        ejabberd) ej_stop ;;
        *) kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true ;;
    esac
}

run() { # server scenario args...
    local server=$1; shift
    for rep in $(seq 1 "$REPS"); do
        start_server "$server"
        log "$server $* (run $rep, pid $SERVER_PID)"
        "$LOADGEN" --port "$PORT" --domain localhost --accounts 'user{n}' --account-count "$ACCOUNTS" \
            --password "$PASSWORD" --mechanism SCRAM-SHA-1 --insecure --server-pid "$SERVER_PID" \
            --label "$server" "$@" | tee -a "$RESULTS" || log "$server $*: the load generator failed"
        stop_server "$server"
    done
}

main() {
    install_servers
    prepare
    create_accounts
    for s in $SERVERS; do
        run "$s" login --count "$LOGIN_N" --concurrency 50
        run "$s" idle --sessions "$IDLE_S" --concurrency 50 --hold-secs "$IDLE_HOLD"
        run "$s" messages --pairs "$PAIRS" --duration-secs "$MSG_SECS"
        run "$s" messages --pairs "$PAIRS" --rate "$RATE" --duration-secs "$MSG_SECS"
        run "$s" churn --cycles "$CHURN" --concurrency 50 --sample "$CHURN_SAMPLE"
    done
    python3 "$ROOT/bench/report.py" "$RESULTS" "$ROOT/docs/benchmarks.md" \
        "ACCOUNTS=$ACCOUNTS REPS=$REPS SCALE=$SCALE bench/compare.sh"
}

main "$@"
