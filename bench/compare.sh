#!/usr/bin/env bash
# Runs every load-generator scenario against Corvid, Prosody and ejabberd on this machine and
# writes docs/benchmarks.md (issue #7). A benchmark, not a test: tests/run.sh does not call it.
#
#   bench/compare.sh                 # full counts (20,000 accounts, 3 runs each)
#   ACCOUNTS=1000 REPS=1 SCALE=small bench/compare.sh   # a quick pass
#
# Needs root (apt-get, the ejabberd user). Everything runs on loopback from $WORK; the Debian
# services apt may start are stopped, nothing else of the system is touched. Corvid also runs as
# a 3-node cluster (combined nodes, a private redis-server) for the `cluster` scenario, steady and
# with the third node killed; Prosody and ejabberd are not clustered.
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
# Corvid's 3-node cluster (combined nodes, Redis storage): private Redis, client, gRPC and admin
# ports of nodes 1..3.
REDIS_PORT=16379
CLUSTER_C2S=(16221 16222 16223)
CLUSTER_GRPC=(17001 17002 17003)
CLUSTER_ADMIN=(19091 19092 19093)

if [ "$SCALE" = full ]; then
    LOGIN_N=20000; IDLE_S=10000; IDLE_HOLD=60; PAIRS=50; MSG_SECS=20; RATE=5000; CHURN=100000; CHURN_SAMPLE=5000
else
    LOGIN_N=2000; IDLE_S=$((ACCOUNTS < 1000 ? ACCOUNTS : 1000)); IDLE_HOLD=10; PAIRS=20; MSG_SECS=5; RATE=2000; CHURN=4000; CHURN_SAMPLE=500
fi

log() { echo "compare.sh: $*" >&2; }

install_servers() {
    if ! command -v prosody >/dev/null || ! command -v ejabberdctl >/dev/null || ! command -v redis-server >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prosody ejabberd lua-unbound redis-server
    fi
    # apt may have started the system instances: stop them (ours run privately).
    service prosody stop >/dev/null 2>&1 || true
    service ejabberd stop >/dev/null 2>&1 || true
    service redis-server stop >/dev/null 2>&1 || true
}

prepare() {
    rm -rf "$WORK"
    mkdir -p "$WORK"/{cert,corvid/data,prosody/data,ejabberd/{conf,spool,logs},cluster/redis}
    # ECDSA P-256, as certificate authorities issue by default today: with RSA-2048 the private-key
    # operation of every handshake is a fixed cost all three servers pay alike. KEY_TYPE=rsa
    # measures that variant.
    if [ "${KEY_TYPE:-ec}" = rsa ]; then newkey=(-newkey rsa:2048); else
        newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1); fi
    openssl req -x509 "${newkey[@]}" -nodes -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost \
        -keyout "$WORK/cert/key.pem" -out "$WORK/cert/cert.pem" 2>/dev/null
    cat "$WORK/cert/key.pem" "$WORK/cert/cert.pem" > "$WORK/cert/both.pem"
    chmod 644 "$WORK/cert/"*.pem
    for f in corvid.toml prosody.cfg.lua ejabberd.yml; do
        sed "s|@WORK@|$WORK|g" "$ROOT/bench/$f" > "$WORK/$f"
    done
    # Our own ejabberdctl.cfg: the Debian one writes the pid file into /run/ejabberd, where the
    # system instance keeps its own.
    cp /etc/ejabberd/inetrc "$WORK/ejabberd/conf/"
    printf 'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\nEJABBERD_PID_PATH=%s\n' \
        "$WORK/ejabberd/ejabberd.pid" > "$WORK/ejabberd/conf/ejabberdctl.cfg"
    cp "$WORK/ejabberd.yml" "$WORK/ejabberd/conf/ejabberd.yml"
    chown -R ejabberd: "$WORK/ejabberd" "$WORK/cert"
    (cd "$ROOT" && cargo build --release -p corvid -p corvid-loadgen)
}

create_accounts() {
    log "creating $ACCOUNTS accounts on each server"
    seq 1 "$ACCOUNTS" | sed "s/.*/user&@localhost,$PASSWORD/" > "$WORK/users.csv"
    "$CORVID" --config "$WORK/corvid.toml" user import --csv "$WORK/users.csv" >&2
    if wants corvid; then
        # The same accounts in the cluster's Redis, through the same command and configuration.
        redis_start
        (cluster_exports; "$CORVID" --config "$WORK/corvid.toml" user import --csv "$WORK/users.csv" >&2)
    fi
    # Prosody's internal_hashed store, written directly (prosodyctl register takes ~0.2 s each).
    python3 "$ROOT/bench/prosody_accounts.py" "$WORK/prosody/data" localhost "$ACCOUNTS" "$PASSWORD"
    # ejabberd: one XEP-0227 file with every account, imported in one call (ejabberd derives the
    # SCRAM keys, 4096 iterations); one `ejabberdctl register` per account starts an Erlang VM each
    # (about a second), and Debian's ejabberd has no Lua for import_prosody.
    {
        echo "<?xml version='1.0' encoding='UTF-8'?>"
        echo "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>"
        seq 1 "$ACCOUNTS" | sed "s|.*|<user name='user&' password='$PASSWORD'/>|"
        echo "</host></server-data>"
    } > "$WORK/ejabberd/users.xml"
    chown ejabberd: "$WORK/ejabberd/users.xml"
    ej_start
    # Deriving 20,000 SCRAM keys takes ejabberd a few minutes: longer than ejabberdctl's RPC
    # timeout (the script then stopped the node mid-import).
    ejctl --no-timeout import_piefxis "$WORK/ejabberd/users.xml" >&2
    local have
    have=$(ejctl registered_users localhost | wc -l)
    if [ "$have" -ne "$ACCOUNTS" ]; then
        log "ejabberd has $have of $ACCOUNTS accounts after the import"
        return 1
    fi
    ej_stop
}

# ejabberdctl run as root switches to the ejabberd user with su, which leaves the node 1024 open
# files (the soft limit): a thousand idle sessions then fail. Switch ourselves and raise the soft
# limit to the hard one, as Corvid and Prosody get from this shell.
ejctl() {
    su -s /bin/sh -c 'ulimit -n "$(ulimit -Hn)"; exec ejabberdctl "$@"' ejabberd -- ejabberdctl $(ej_args) "$@"
}
ej_args() { echo "--config-dir $WORK/ejabberd/conf --config $WORK/ejabberd/conf/ejabberd.yml --spool $WORK/ejabberd/spool --logs $WORK/ejabberd/logs --node $EJ_NODE"; }
ej_start() { ejctl start; ejctl started; }
ej_stop() {
    ejctl stop >/dev/null 2>&1 || true
    ejctl stopped >/dev/null 2>&1 || true
    # The control nodes start epmd; ejabberdctl's own clean-up of it can race with their exit.
    epmd -names 2>/dev/null | grep -q '^name ' || epmd -kill >/dev/null 2>&1 || true
}
ej_running() { [ -f "$WORK/ejabberd/ejabberd.pid" ] && kill -0 "$(cat "$WORK/ejabberd/ejabberd.pid")" 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on port $1"; return 1
}

wants() { case " $SERVERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Corvid's cluster: three combined nodes (registry voters and edges) on loopback, sharing one
# private Redis (docs/cluster.md), with bench/corvid.toml's TLS, limits and SCRAM settings.
REDIS_PID=
redis_start() {
    [ -n "$REDIS_PID" ] && return 0
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$WORK/cluster/redis" > "$WORK/cluster/redis/log" 2>&1 &
    REDIS_PID=$!
    wait_port "$REDIS_PORT"
}
redis_stop() {
    [ -z "$REDIS_PID" ] && return 0
    kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
}
# The cluster-wide settings, exported into the (sub)shell that calls it.
cluster_exports() {
    export CORVID__STORAGE__BACKEND=redis
    export CORVID__STORAGE__REDIS__URL="redis://127.0.0.1:$REDIS_PORT/0"
    export CORVID__CLUSTER__ENABLED=true
    export CORVID__CLUSTER__MEMBERS="1=127.0.0.1:${CLUSTER_GRPC[0]},2=127.0.0.1:${CLUSTER_GRPC[1]},3=127.0.0.1:${CLUSTER_GRPC[2]}"
}
CLUSTER_PIDS=()
cluster_start() {
    # A fresh Raft group every run (the accounts stay in Redis): no sessions or leases left over.
    rm -rf "$WORK"/cluster/node{1,2,3}
    CLUSTER_PIDS=()
    for n in 1 2 3; do
        mkdir -p "$WORK/cluster/node$n"
        # exec: the pid is the server's own (the kill variant kills it by pid).
        (
            cluster_exports
            export CORVID__CLUSTER__NODE_ID=$n
            export CORVID__CLUSTER__LISTEN="127.0.0.1:${CLUSTER_GRPC[n-1]}"
            export CORVID__STORAGE__PATH="$WORK/cluster/node$n"
            export CORVID__C2S__STARTTLS_LISTEN="127.0.0.1:${CLUSTER_C2S[n-1]}"
            export CORVID__C2S__DIRECT_TLS_LISTEN=
            export CORVID__ADMIN__LISTEN="127.0.0.1:${CLUSTER_ADMIN[n-1]}"
            exec "$CORVID" --config "$WORK/corvid.toml" serve > "$WORK/cluster/node$n/log" 2>&1
        ) &
        CLUSTER_PIDS+=($!)
    done
    for n in 1 2 3; do wait_port "${CLUSTER_C2S[n-1]}"; done
    # Ready when every node binds a session: a leader exists and each node's lease is live.
    for n in 1 2 3; do
        local ok=
        for _ in $(seq 1 60); do
            if "$LOADGEN" --port "${CLUSTER_C2S[n-1]}" --domain localhost --accounts 'user{n}' \
                --account-count 1 --password "$PASSWORD" --insecure --timeout-secs 5 \
                login --count 1 --concurrency 1 2>/dev/null | grep -q '"errors":0'; then
                ok=1; break
            fi
            sleep 0.5
        done
        [ -n "$ok" ] || { log "cluster node $n binds no session"; return 1; }
    done
}
cluster_stop() {
    local pid
    for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    CLUSTER_PIDS=()
}

run_cluster() { # cluster-scenario args...
    local edges="127.0.0.1:${CLUSTER_C2S[0]},127.0.0.1:${CLUSTER_C2S[1]},127.0.0.1:${CLUSTER_C2S[2]}"
    for rep in $(seq 1 "$REPS"); do
        cluster_start
        # "@PID3@" stands for the third node's pid, known only now.
        local args=("${@//@PID3@/${CLUSTER_PIDS[2]}}")
        log "corvid cluster ${args[*]} (run $rep, pids ${CLUSTER_PIDS[*]})"
        "$LOADGEN" --domain localhost --accounts 'user{n}' --account-count "$ACCOUNTS" \
            --password "$PASSWORD" --mechanism SCRAM-SHA-1 --insecure --label corvid \
            cluster --edges "$edges" "${args[@]}" | tee -a "$RESULTS" \
            || log "corvid cluster ${args[*]}: the load generator failed"
        cluster_stop
    done
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
            # The pid file (ejabberdctl.cfg written by prepare) holds the beam.smp process's pid.
            SERVER_PID=$(cat "$WORK/ejabberd/ejabberd.pid"); PORT=35222 ;;
    esac
    wait_port "$PORT"
    sleep 1
}

stop_server() {
    case $1 in
        ejabberd) ej_stop ;;
        *)
            kill "$SERVER_PID" 2>/dev/null || true
            # A server still there 30 s after SIGTERM is killed: its figures are taken (Prosody
            # 0.12 closing 10,000 idle sessions once stayed for 14 minutes and stalled the run).
            for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$SERVER_PID" 2>/dev/null || true
            wait "$SERVER_PID" 2>/dev/null || true ;;
    esac
    SERVER_PID=
}

# On any exit (a failed step under set -e, Ctrl-C, kill): stop whatever private instance runs.
cleanup() {
    local rc=$?
    trap - EXIT
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if ej_running; then ej_stop; fi
    cluster_stop
    redis_stop
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
    if wants corvid; then
        # Corvid only: Prosody and ejabberd are not clustered in this comparison.
        run_cluster --pairs "$PAIRS" --rate "$RATE" --duration-secs "$MSG_SECS"
        run_cluster --pairs "$PAIRS" --rate "$RATE" --duration-secs "$MSG_SECS" \
            --kill-pid @PID3@ --kill-after-secs "$((MSG_SECS / 3))"
        redis_stop
    fi
    if [ "${KEY_TYPE:-ec}" = rsa ]; then export CERT_DESC=RSA-2048; else export CERT_DESC="ECDSA P-256"; fi
    python3 "$ROOT/bench/report.py" "$RESULTS" "$ROOT/docs/benchmarks.md" \
        "ACCOUNTS=$ACCOUNTS REPS=$REPS SCALE=$SCALE bench/compare.sh" \
        "$SCALE scale: $ACCOUNTS accounts; login $LOGIN_N logins; idle $IDLE_S sessions held $IDLE_HOLD s; messages $PAIRS pairs for $MSG_SECS s each, closed loop and at $RATE msg/s; churn $CHURN cycles, sampled over $CHURN_SAMPLE; Corvid cluster $PAIRS pairs at $RATE msg/s for $MSG_SECS s, steady and with the third node killed after $((MSG_SECS / 3)) s; $REPS run(s) of each"
}

main "$@"
