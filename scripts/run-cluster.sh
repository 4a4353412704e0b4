#!/usr/bin/env bash
# Start a local dsm cluster in the foreground: a primary master, a backup master and 3 slaves
# on 127.0.0.1. DSM_SECRET_FILE=PATH gives every node --secret-file PATH.
# Every node keeps its state in a data dir under DSM_DATA (default ./dsm-data): master/,
# backup/, slave-1/ ... (each slave's log of what it holds, each master's epoch and roster), so
# stopping the script and starting it again keeps every key. Remove the directory to start over.
# DSM_SLAVE_ARGS adds flags to every slave (e.g. "--fsync always" or "--max-memory 1G").
# Ctrl-C (or any child dying at start-up) stops everything this script started.
set -euo pipefail
BIN=${1:-target/release}
LISTEN=${DSM_LISTEN:-127.0.0.1:7000}
HEARTBEAT=${DSM_HEARTBEAT:-127.0.0.1:7001}
BACKUP=${DSM_BACKUP:-127.0.0.1:7002}
BACKUP_HEARTBEAT=${DSM_BACKUP_HEARTBEAT:-127.0.0.1:7003}
SLAVES=${DSM_SLAVES:-3}
REPLICAS=${DSM_REPLICAS:-2}
LOGDIR=${DSM_LOGDIR:-$(mktemp -d -t dsm-cluster.XXXXXX)}
DATA=${DSM_DATA:-./dsm-data}
mkdir -p "$LOGDIR"
read -r -a SLAVE_ARGS <<<"${DSM_SLAVE_ARGS:-}"
mkdir -p "$DATA"
SECRET=()
CLIENT_SECRET=""
if [[ -n ${DSM_SECRET_FILE:-} ]]; then
    SECRET=(--secret-file "$DSM_SECRET_FILE")
    CLIENT_SECRET=" --secret-file $DSM_SECRET_FILE"
fi

pids=()
cleanup() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "cluster stopped; logs in $LOGDIR"
}
trap cleanup INT TERM EXIT

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

"$BIN/dsm-master" --listen "$LISTEN" --heartbeat "$HEARTBEAT" --replicas "$REPLICAS" "${SECRET[@]}" \
    --data-dir "$DATA/master" >"$LOGDIR/master.out" 2>"$LOGDIR/master.log" &
pids+=($!)
wait_ready "$LOGDIR/master.out" "$!" "dsm-master"
"$BIN/dsm-master" --listen "$BACKUP" --heartbeat "$BACKUP_HEARTBEAT" --replicas "$REPLICAS" "${SECRET[@]}" \
    --backup-of "$HEARTBEAT" --data-dir "$DATA/backup" >"$LOGDIR/backup.out" 2>"$LOGDIR/backup.log" &
pids+=($!)
wait_ready "$LOGDIR/backup.out" "$!" "dsm-master (backup)"
for i in $(seq 1 "$SLAVES"); do
    "$BIN/dsm-slave" --master "$LISTEN,$BACKUP" --id "slave-$i" "${SECRET[@]}" \
        --data-dir "$DATA/slave-$i" "${SLAVE_ARGS[@]}" >"$LOGDIR/slave-$i.out" 2>"$LOGDIR/slave-$i.log" &
    pids+=($!)
    wait_ready "$LOGDIR/slave-$i.out" "$!" "dsm-slave slave-$i"
done

# The primary answers once it has heard what the slaves hold: at the first start it takes
# what registering slaves hold for --discover-ms (3 s), after a restart it waits for its roster.
for _ in $(seq 600); do
    "$BIN/dsm-client" --master "$LISTEN"$CLIENT_SECRET status 2>/dev/null | grep -q "role primary" && break
    sleep 0.1
done
"$BIN/dsm-client" --master "$LISTEN"$CLIENT_SECRET status 2>/dev/null | grep -q "role primary" ||
    { echo "the primary is not serving after 60 s; its log: $LOGDIR/master.log"; tail -5 "$LOGDIR/master.log"; exit 1; }

cat <<MSG
dsm cluster up: primary $LISTEN (heartbeat $HEARTBEAT), backup $BACKUP (heartbeat
$BACKUP_HEARTBEAT), $SLAVES slaves, R=$REPLICAS
logs: $LOGDIR
data: $DATA (kept when the cluster stops: start the script again and every key is back)
In another terminal:
  $BIN/dsm-client$CLIENT_SECRET write greeting hello world
  $BIN/dsm-client$CLIENT_SECRET read greeting
  $BIN/dsm-client$CLIENT_SECRET status
  $BIN/dsm-client$CLIENT_SECRET                  (REPL: WRITE key value / READ key)
The client's default --master is $LISTEN,$BACKUP, so it follows a failover.
Ctrl-C stops the cluster.
MSG
# Keep running while any process lives: killing the primary to watch the failover is fine.
wait
