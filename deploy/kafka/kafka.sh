#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft: combined broker and controller) on 127.0.0.1,
# for development, the demo and the tests. The broker comes from the official
# org.apache.kafka:kafka_2.13 artifacts on Maven Central, resolved by `mvn` from the POM beside
# this script and cached outside the work tree.
#
#   deploy/kafka/kafka.sh start    start (if not running), wait until it answers, print address
#   deploy/kafka/kafka.sh stop     stop it (SIGTERM, then SIGKILL after a grace period)
#   deploy/kafka/kafka.sh status   print the address and exit 0 if it answers, else exit 1
#   deploy/kafka/kafka.sh fetch    only resolve the artifacts (used by CI to warm the cache)
#
# Environment (defaults in brackets):
#   NIR_KAFKA_PORT        client port [9092]; the controller listens on port + 1
#   NIR_KAFKA_DATA_DIR    log dirs, pid file and server.log [$XDG_CACHE_HOME/nir-hub/kafka-data]
#   NIR_CACHE_DIR         Maven repository and classpath cache [$XDG_CACHE_HOME/nir-hub]
#   NIR_KAFKA_HEAP        JVM heap [512m]
#   NIR_KAFKA_START_TIMEOUT  seconds to wait for the broker to answer [90]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_dir="${NIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nir-hub}"
data_dir="${NIR_KAFKA_DATA_DIR:-$cache_dir/kafka-data}"
port="${NIR_KAFKA_PORT:-9092}"
controller_port="$((port + 1))"
heap="${NIR_KAFKA_HEAP:-512m}"
timeout="${NIR_KAFKA_START_TIMEOUT:-90}"
pid_file="$data_dir/kafka.pid"
address="127.0.0.1:$port"

kafka_version() {
  sed -n 's#.*<kafka.version>\(.*\)</kafka.version>.*#\1#p' "$here/pom.xml"
}

# Prints the broker's classpath, resolving it with Maven the first time (or after a POM change).
classpath() {
  local pom_sum cp_file
  pom_sum="$(sha256sum "$here/pom.xml" | cut -c1-16)"
  cp_file="$cache_dir/kafka-$(kafka_version)-$pom_sum.classpath"
  if [[ ! -s "$cp_file" ]]; then
    mkdir -p "$cache_dir"
    echo "resolving Kafka $(kafka_version) from Maven Central (cached in $cache_dir/m2)" >&2
    mvn -q -B -f "$here/pom.xml" -Dmaven.repo.local="$cache_dir/m2" \
      dependency:build-classpath -Dmdep.outputFile="$cp_file.tmp" >&2
    mv "$cp_file.tmp" "$cp_file"
  fi
  cat "$cp_file"
}

answers() {
  # The client listener accepts connections only once the broker has finished starting.
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && grep -q "Kafka Server started" "$data_dir/server.log" 2>/dev/null
}

running_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid; pid="$(cat "$pid_file")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

write_config() {
  cat > "$data_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://$address
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data_dir/logs
# The hub creates its topics with explicit partition counts; nothing is created by accident.
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
}

start() {
  if answers && running_pid >/dev/null; then
    echo "$address"; return 0
  fi
  mkdir -p "$data_dir"
  local cp; cp="$(classpath)"
  write_config
  if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
    java -cp "$cp" -Dkafka.logs.dir="$data_dir" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
      kafka.tools.StorageTool format --ignore-formatted \
      -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
      -c "$data_dir/server.properties" >"$data_dir/format.log" 2>&1 \
      || { cat "$data_dir/format.log" >&2; exit 1; }
  fi
  : > "$data_dir/server.log"
  nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$data_dir" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
    -cp "$cp" kafka.Kafka "$data_dir/server.properties" >"$data_dir/stdout.log" 2>&1 &
  echo $! > "$pid_file"
  local waited=0
  until answers; do
    if ! running_pid >/dev/null; then
      echo "Kafka exited while starting; last lines of $data_dir/stdout.log and server.log:" >&2
      tail -n 30 "$data_dir/stdout.log" "$data_dir/server.log" >&2
      exit 1
    fi
    if (( waited >= timeout * 2 )); then
      echo "Kafka did not answer on $address within ${timeout}s; see $data_dir/server.log" >&2
      exit 1
    fi
    sleep 0.5; waited=$((waited + 1))
  done
  echo "$address"
}

stop() {
  local pid
  pid="$(running_pid)" || { echo "Kafka is not running"; return 0; }
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pid_file"
  echo "Kafka stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "$address"; else echo "Kafka is not answering on $address" >&2; exit 1; fi ;;
  fetch) classpath >/dev/null ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
