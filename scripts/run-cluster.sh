#!/usr/bin/env bash
# Start a local dsm cluster in the foreground: a primary master, a backup master and 3 slaves
# on 127.0.0.1 (`make run-cluster`; `make help` and README "Quick start" list the variables).
#
#   DSM_LISTEN=127.0.0.1:7000            the primary's client address
#   DSM_HEARTBEAT=127.0.0.1:7001         the primary's heartbeat address (the backup follows it)
#   DSM_BACKUP=127.0.0.1:7002            the backup's client address
#   DSM_BACKUP_HEARTBEAT=127.0.0.1:7003  the backup's heartbeat address
#   DSM_SLAVES=3                         how many slaves
#   DSM_REPLICAS=2                       copies of each key (R)
#   DSM_DATA=./dsm-data                  every node's data dir: master/, backup/, slave-N/
#                                        (kept: start again and every key is back)
#   DSM_LOGDIR=DIR                       logs there, kept (default: a temporary folder,
#                                        removed when the cluster stops)
#   DSM_SECRET_FILE=PATH                 every node gets --secret-file PATH, and the masters
#                                        --require-client-auth: clients need the secret too
#                                        (default: DSM_DATA/cluster.secret, 32 random bytes
#                                        made at the first start, mode 600; slaves and the
#                                        backup must prove it, clients need not)
#   DSM_SLAVE_ARGS="..."                 more flags for every slave (e.g. "--fsync always")
#   DSM_MASTER_ARGS="..."                more flags for both masters
#   DSM_METRICS_PORT=9100                HTTP /metrics on 127.0.0.1 (loopback only): the
#                                        primary on this port (its status page at /), the
#                                        backup on +1, slave N on +1+N; 0 turns it off
#
# Ctrl-C (or TERM) stops every process this script started, by PID, waits for them, removes
# the temporary log folder and exits 0; a second Ctrl-C meanwhile changes nothing. A child
# dying at start-up stops the rest and exits 1, keeping the logs.
set -euo pipefail
BIN=${1:-target/release}
LISTEN=${DSM_LISTEN:-127.0.0.1:7000}
HEARTBEAT=${DSM_HEARTBEAT:-127.0.0.1:7001}
BACKUP=${DSM_BACKUP:-127.0.0.1:7002}
BACKUP_HEARTBEAT=${DSM_BACKUP_HEARTBEAT:-127.0.0.1:7003}
SLAVES=${DSM_SLAVES:-3}
REPLICAS=${DSM_REPLICAS:-2}
DATA=${DSM_DATA:-./dsm-data}
METRICS_PORT=${DSM_METRICS_PORT:-9100}
# `--metrics 127.0.0.1:PORT` for the node at offset $1 from DSM_METRICS_PORT (none when 0).
metrics() {
    [[ $METRICS_PORT == 0 ]] || echo "--metrics 127.0.0.1:$((METRICS_PORT + $1))"
}
read -r -a SLAVE_ARGS <<<"${DSM_SLAVE_ARGS:-}"
read -r -a MASTER_ARGS <<<"${DSM_MASTER_ARGS:-}"
if [[ -n ${DSM_LOGDIR:-} ]]; then
    LOGDIR=$DSM_LOGDIR
    TEMP_LOGS=0
else
    LOGDIR=$(mktemp -d -t dsm-cluster.XXXXXX)
    TEMP_LOGS=1
fi
mkdir -p "$LOGDIR" "$DATA"
SECRET=()
MASTER_SECRET=()
CLIENT_SECRET=""
if [[ -n ${DSM_SECRET_FILE:-} ]]; then
    [[ -r $DSM_SECRET_FILE ]] || { echo "DSM_SECRET_FILE=$DSM_SECRET_FILE: cannot read it" >&2; exit 2; }
    SECRET=(--secret-file "$DSM_SECRET_FILE")
    MASTER_SECRET=(--secret-file "$DSM_SECRET_FILE" --require-client-auth)
    CLIENT_SECRET=" --secret-file $DSM_SECRET_FILE"
else
    # Secure by default: the cluster's own secret, made once and kept with the data, so that
    # no process on this machine can register as a slave or a backup without it.
    CLUSTER_SECRET=$DATA/cluster.secret
    if [[ ! -s $CLUSTER_SECRET ]]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$CLUSTER_SECRET.tmp" && mv "$CLUSTER_SECRET.tmp" "$CLUSTER_SECRET")
    fi
    chmod 600 "$CLUSTER_SECRET"
    SECRET=(--secret-file "$CLUSTER_SECRET")
    MASTER_SECRET=(--secret-file "$CLUSTER_SECRET")
fi
# What the client needs besides its defaults (--master 127.0.0.1:7000,127.0.0.1:7002).
CLIENT_OPTS=$CLIENT_SECRET
if [[ $LISTEN,$BACKUP != 127.0.0.1:7000,127.0.0.1:7002 ]]; then
    CLIENT_OPTS=" --master $LISTEN,$BACKUP$CLIENT_SECRET"
fi

pids=()
# Stop every child by PID: TERM, up to 5 s for them to go, then KILL. Signals that arrive
# meanwhile are ignored, so a second Ctrl-C cannot cut the cleanup short.
stop_all() {
    trap '' INT TERM
    trap - EXIT
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
# Ctrl-C or TERM: the way to stop the cluster, so it ends with status 0.
on_signal() {
    stop_all
    if [[ $TEMP_LOGS == 1 ]]; then
        rm -rf "$LOGDIR"
        echo "cluster stopped; data kept in $DATA"
    else
        echo "cluster stopped; data kept in $DATA, logs in $LOGDIR"
    fi
    exit 0
}
# Any other end (a start-up failure): stop the rest, keep the logs to read.
on_exit() {
    local status=$?
    stop_all
    echo "cluster stopped; logs kept in $LOGDIR"
    exit "$status"
}
trap on_signal INT TERM
trap on_exit EXIT

# Wait for a line on a child's stdout file, or fail if the child dies or 10 s pass.
wait_ready() {
    local file=$1 pid=$2 what=$3
    for _ in $(seq 100); do
        grep -q "ready" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { echo "$what exited at start-up:"; tail -5 "$LOGDIR"/*.log; exit 1; }
        sleep 0.1
    done
    echo "$what not ready after 10 s"; exit 1
}

"$BIN/dsm-master" --listen "$LISTEN" --heartbeat "$HEARTBEAT" --replicas "$REPLICAS" "${MASTER_SECRET[@]}" \
    --data-dir "$DATA/master" $(metrics 0) "${MASTER_ARGS[@]}" >"$LOGDIR/master.out" 2>"$LOGDIR/master.log" &
pids+=($!)
wait_ready "$LOGDIR/master.out" "$!" "dsm-master"
"$BIN/dsm-master" --listen "$BACKUP" --heartbeat "$BACKUP_HEARTBEAT" --replicas "$REPLICAS" "${MASTER_SECRET[@]}" \
    --backup-of "$HEARTBEAT" --data-dir "$DATA/backup" $(metrics 1) "${MASTER_ARGS[@]}" \
    >"$LOGDIR/backup.out" 2>"$LOGDIR/backup.log" &
pids+=($!)
wait_ready "$LOGDIR/backup.out" "$!" "dsm-master (backup)"
for i in $(seq 1 "$SLAVES"); do
    "$BIN/dsm-slave" --master "$LISTEN,$BACKUP" --id "slave-$i" "${SECRET[@]}" \
        --data-dir "$DATA/slave-$i" $(metrics $((1 + i))) "${SLAVE_ARGS[@]}" >"$LOGDIR/slave-$i.out" 2>"$LOGDIR/slave-$i.log" &
    pids+=($!)
    wait_ready "$LOGDIR/slave-$i.out" "$!" "dsm-slave slave-$i"
done

# The primary answers once it has heard what the slaves hold: at the first start it takes
# what registering slaves hold for --discover-ms (3 s), after a restart it waits for its roster.
serving() {
    "$BIN/dsm-client" --master "$LISTEN"$CLIENT_SECRET status 2>/dev/null | grep -q "role primary"
}
for _ in $(seq 600); do
    serving && break
    sleep 0.1
done
serving || { echo "the primary is not serving after 60 s; its log: $LOGDIR/master.log"; tail -5 "$LOGDIR/master.log"; exit 1; }

cat <<MSG
dsm cluster up: primary $LISTEN (heartbeat $HEARTBEAT), backup $BACKUP (heartbeat
$BACKUP_HEARTBEAT), $SLAVES slaves, R=$REPLICAS
logs: $LOGDIR$([[ $TEMP_LOGS == 1 ]] && echo " (removed when the cluster stops)")
data: $DATA (kept when the cluster stops: start the script again and every key is back)
secret: ${DSM_SECRET_FILE:-$DATA/cluster.secret (made for this cluster; slaves and the backup prove it)}
In another terminal:
  $BIN/dsm-client$CLIENT_OPTS write greeting hello world
  $BIN/dsm-client$CLIENT_OPTS read greeting
  $BIN/dsm-client$CLIENT_OPTS status
  $BIN/dsm-client$CLIENT_OPTS                  (REPL: WRITE key value / READ key / HELP)
The client tries the primary, then the backup: it follows a failover.
$([[ $METRICS_PORT == 0 ]] || echo "Status page: http://127.0.0.1:$METRICS_PORT/ (metrics: /metrics; the backup on port
$((METRICS_PORT + 1)), slave N on $((METRICS_PORT + 1))+N); live numbers: $BIN/dsm-client top --metrics 127.0.0.1:$METRICS_PORT")
Ctrl-C stops the cluster.
MSG
# Keep running while any process lives: killing the primary to watch the failover is fine.
# `wait` returns early when a signal's trap runs.
wait
