#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft: combined broker and controller) on 127.0.0.1,
# for development, the demo and the tests. The broker comes from the official
# org.apache.kafka:kafka_2.13 artifacts on Maven Central, resolved by `mvn` from the POM beside
# this script and cached outside the work tree.
#
# It is secured as production is (README, "Security model"), with no plaintext listener:
#   - clients: SASL_SSL on the client port; SCRAM-SHA-512 for the hub's own principals and for
#     sources with hub-managed passwords, and OAUTHBEARER (Maskinporten access tokens, checked
#     against a JWKS endpoint) when NIR_KAFKA_JWKS_URL is set;
#   - the controller listener: TLS with client certificates (the broker's own);
#   - StandardAuthorizer, allow.everyone.if.no.acl.found=false: nothing is allowed that no ACL
#     allows. Super users: the broker itself and nir-admin (topics, ACLs, credentials).
# The first start generates, in the data directory, a local CA and the broker's certificate
# (tls/ca.pem is what clients trust; tls/web.pem, issued by the same CA for 127.0.0.1, is what
# the demo's web servers serve) and random SCRAM passwords for nir-broker and nir-admin
# (secrets/<principal>.password, one file each, mode 0600 in a 0700 directory). The hub's other
# principals, their ACLs and the sources' are made by `hub topics ensure` and `hub sources grant`
# through Kafka's admin API. No password is ever an argument of a process this script starts
# (tests/integration/test_kafka_script.py watches every command line).
#
#   deploy/kafka/kafka.sh start    start (if not running), wait until it answers, print address
#   deploy/kafka/kafka.sh stop     stop it (SIGTERM, then SIGKILL after a grace period)
#   deploy/kafka/kafka.sh status   print the address and exit 0 if it answers, else exit 1
#   deploy/kafka/kafka.sh fetch    only resolve the artifacts (used by CI to warm the cache)
#   deploy/kafka/kafka.sh run      prepare as `start` does, then run in the foreground (containers)
#   deploy/kafka/kafka.sh compose-secrets DIR   make the files docker-compose.yml hands out as
#                                  secrets: each principal's password, the mask key, the workers'
#                                  certificate
#
# Environment (defaults in brackets):
#   NIR_KAFKA_PORT        client port [9092]; the controller listens on port + 1
#   NIR_KAFKA_DATA_DIR    log dirs, pid file and server.log [$XDG_CACHE_HOME/nir-hub/kafka-data]
#   NIR_CACHE_DIR         Maven repository and classpath cache [$XDG_CACHE_HOME/nir-hub]
#   NIR_KAFKA_HEAP        JVM heap [512m]
#   NIR_KAFKA_HOME        an installed Kafka whose libs/ to run instead of Maven's [none]
#   NIR_KAFKA_CREDENTIALS_DIR  where clients find tls/ca.pem and secrets/ [the data dir]
#   NIR_KAFKA_START_TIMEOUT  seconds to wait for the broker to answer [90]
#   NIR_KAFKA_HOST        a further host name in the broker's certificate, advertised instead
#                         of 127.0.0.1 (compose: kafka) [none]
#   NIR_KAFKA_JWKS_URL    JWKS endpoint of Maskinporten (or its stand-in, `hub maskinporten
#                         stand-in`); enables OAUTHBEARER. It must answer when the broker starts.
#   NIR_KAFKA_OAUTH_ISSUER    the tokens' required issuer [the JWKS URL without "jwks"]
#   NIR_KAFKA_OAUTH_AUDIENCE  the tokens' required audience [nir-kafka]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_dir="${NIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nir-hub}"
data_dir="${NIR_KAFKA_DATA_DIR:-$cache_dir/kafka-data}"
port="${NIR_KAFKA_PORT:-9092}"
controller_port="$((port + 1))"
heap="${NIR_KAFKA_HEAP:-512m}"
timeout="${NIR_KAFKA_START_TIMEOUT:-90}"
pid_file="$data_dir/kafka.pid"
host="${NIR_KAFKA_HOST:-127.0.0.1}"
# Only this machine can reach the local broker, unless it is given a host name to be reached by.
listen_host="$([[ "$host" == "127.0.0.1" ]] && echo 127.0.0.1 || echo 0.0.0.0)"
address="$host:$port"
tls_dir="$data_dir/tls"   # the CA's and the broker's keys: the broker's alone
# What clients need: the CA certificate (tls/ca.pem) and the passwords (secrets/).
credentials_dir="${NIR_KAFKA_CREDENTIALS_DIR:-$data_dir}"
secrets_dir="$credentials_dir/secrets"
jwks_url="${NIR_KAFKA_JWKS_URL:-}"
oauth_issuer="${NIR_KAFKA_OAUTH_ISSUER:-${jwks_url%jwks}}"
oauth_audience="${NIR_KAFKA_OAUTH_AUDIENCE:-nir-kafka}"

kafka_version() {
  sed -n 's#.*<kafka.version>\(.*\)</kafka.version>.*#\1#p' "$here/pom.xml"
}

# Prints the broker's classpath: an installed Kafka's libs (NIR_KAFKA_HOME, as in the official
# image), else resolved with Maven the first time (or after a POM change).
classpath() {
  if [[ -n "${NIR_KAFKA_HOME:-}" ]]; then
    echo "$NIR_KAFKA_HOME/libs/*"; return 0
  fi
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

# A CA in $1 (ca.pem, its key ca.key), made once with openssl.
make_ca() {
  local dir="$1"
  [[ -s "$dir/ca.pem" ]] && return 0
  mkdir -p "$dir"; chmod 700 "$dir"
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=NIR hub local CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  chmod 600 "$dir/ca.key"
}

# A certificate for $2 (subject CN) and the subject alternative names $3, issued by the CA in $1:
# $1/$2.crt and its PKCS#8 key $1/$2.key (0600). Server and client use, as the broker's is both.
issue_certificate() {
  local dir="$1" name="$2" san="$3"
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$name" \
    -keyout "$dir/$name.rsa" -out "$dir/$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 825 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  (umask 077; openssl pkcs8 -topk8 -nocrypt -in "$dir/$name.rsa" -out "$dir/$name.key")
  rm -f "$dir/$name.csr" "$dir/$name.ext" "$dir/$name.rsa"
}

# The local CA and the broker's certificate (for 127.0.0.1, localhost and NIR_KAFKA_HOST).
# broker.pem holds the PKCS#8 key and the chain, as Kafka's PEM keystore reads.
make_certificates() {
  [[ -s "$tls_dir/broker.pem" ]] && return 0
  make_ca "$tls_dir"
  local san="DNS:localhost,IP:127.0.0.1"
  [[ "$host" != "127.0.0.1" ]] && san="$san,DNS:$host"
  issue_certificate "$tls_dir" nir-broker "$san"
  (umask 077; cat "$tls_dir/nir-broker.key" "$tls_dir/nir-broker.crt" "$tls_dir/ca.pem" > "$tls_dir/broker.pem")
  rm -f "$tls_dir/nir-broker.key"
}

# The local web servers' certificate (the demo's support page and gateway, on 127.0.0.1 and
# localhost), key and chain in web.pem (0600): they need not hold the broker's key.
make_web_certificate() {
  [[ -s "$tls_dir/web.pem" ]] && return 0
  issue_certificate "$tls_dir" web "DNS:localhost,IP:127.0.0.1"
  (umask 077; cat "$tls_dir/web.key" "$tls_dir/web.crt" "$tls_dir/ca.pem" > "$tls_dir/web.pem")
  rm -f "$tls_dir/web.key"
}

# The hub's own principals: the broker, the super user, and one per service.
principals=(nir-broker nir-admin nir-worker nir-replay nir-connector nir-gateway nir-monitor)

# What docker-compose.yml hands out as compose secrets, one file each, made once in $1:
# <principal>.password for every principal above, and the certificate the workers serve their
# web server with on the compose network (worker.crt, worker.key) from a CA of its own
# (web-ca.pem; its key web-ca.key is mounted by no service). The directory is 0700: no other
# user of the host reads it. The files are 0644 because compose bind-mounts a file secret with
# its host owner and mode, and the services run as users of their images: inside the
# containers, only a service that names a secret in docker-compose.yml has the file at all.
compose_secrets() {
  local dir="${1:?usage: $0 compose-secrets DIR}"
  mkdir -p "$dir"; chmod 700 "$dir"
  local principal
  for principal in "${principals[@]}"; do
    [[ -s "$dir/$principal.password" ]] || (umask 077; openssl rand -hex 32 > "$dir/$principal.password")
  done
  # The key every hub service masks identifiers with (NIR_MASK_KEY_FILE): one for the whole
  # installation, so masks written by one service can be compared with another's.
  [[ -s "$dir/nir-mask.key" ]] || (umask 077; head -c 32 /dev/urandom > "$dir/nir-mask.key")
  if [[ ! -s "$dir/worker.crt" ]]; then
    local ca="$dir/.web-ca"
    make_ca "$ca"
    issue_certificate "$ca" worker "DNS:worker,DNS:support,DNS:localhost,IP:127.0.0.1"
    mv "$ca/worker.crt" "$ca/worker.key" "$dir/"
    mv "$ca/ca.pem" "$dir/web-ca.pem"; mv "$ca/ca.key" "$dir/web-ca.key"; rm -rf "$ca"
  fi
  chmod 644 "$dir"/*.password "$dir/nir-mask.key" "$dir/worker.key" "$dir/worker.crt" "$dir/web-ca.pem"
  chmod 600 "$dir/web-ca.key"
  echo "$dir"
}

# A principal's SCRAM password: read from secrets/, made (random) the first time.
password_of() {
  local file="$secrets_dir/$1.password"
  if [[ ! -s "$file" ]]; then
    mkdir -p "$secrets_dir"; chmod 700 "$secrets_dir"
    (umask 077; openssl rand -hex 32 > "$file")
  fi
  cat "$file"
}

running_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid; pid="$(cat "$pid_file")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

write_config() {
  local mechanisms="SCRAM-SHA-512" oauth=""
  if [[ -n "$jwks_url" ]]; then
    mechanisms="SCRAM-SHA-512,OAUTHBEARER"
    # Kafka's own JWT validation: signature against the JWKS, issuer, audience and expiry; the
    # principal is the token's client_id (Maskinporten's name for the client). A session ends
    # when its token expires: a client must authenticate again with a fresh token.
    oauth="listener.name.client.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;
listener.name.client.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
# Named, not left to the default: Kafka 4.1's default validator on the broker only parses a
# token; it checks neither its signature nor its issuer nor its audience.
sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator
listener.name.client.oauthbearer.connections.max.reauth.ms=3600000
sasl.oauthbearer.jwks.endpoint.url=$jwks_url
sasl.oauthbearer.expected.issuer=$oauth_issuer
sasl.oauthbearer.expected.audience=$oauth_audience
sasl.oauthbearer.sub.claim.name=client_id
sasl.oauthbearer.clock.skew.seconds=10"
  fi
  (umask 077; cat > "$data_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=CLIENT://$listen_host:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=CLIENT://$address
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CONTROLLER:SSL,CLIENT:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=$tls_dir/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls_dir/ca.pem
ssl.endpoint.identification.algorithm=https
listener.name.controller.ssl.client.auth=required
sasl.enabled.mechanisms=$mechanisms
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="nir-broker" password="$(password_of nir-broker)";
$oauth
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:CN=nir-broker;User:nir-broker;User:nir-admin
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
  )
}

# Certificates, passwords, configuration and formatted storage: everything before the JVM.
prepare() {
  mkdir -p "$data_dir"
  cp="$(classpath)"
  make_certificates
  make_web_certificate
  if [[ "$credentials_dir" != "$data_dir" ]]; then
    mkdir -p "$credentials_dir/tls" && cp "$tls_dir/ca.pem" "$credentials_dir/tls/ca.pem"
  fi
  write_config
  if [[ -f "$data_dir/logs/meta.properties" && ! -f "$data_dir/secured" ]]; then
    echo "the broker's data in $data_dir was formatted by an earlier kafka.sh, without the" \
      "credentials of its principals; remove that directory (local data only) and start again" >&2
    exit 1
  fi
  if [[ ! -f "$data_dir/logs/meta.properties" ]]; then
    # The broker's and the admin's SCRAM credentials are written into the metadata log at
    # format time: there is no one yet who could create them through the admin API. The storage
    # tool takes them only as arguments, so they go in a java @argument file (0600, removed
    # after): the launcher reads the main class and its arguments from it, and no process's
    # command line, which every local user can read in /proc, holds a password.
    local cluster_id arguments="$data_dir/format.args"
    cluster_id="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null)"
    (umask 077; printf '"%s"\n' kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
      --add-scram "SCRAM-SHA-512=[name=nir-broker,password=$(password_of nir-broker)]" \
      --add-scram "SCRAM-SHA-512=[name=nir-admin,password=$(password_of nir-admin)]" \
      -c "$data_dir/server.properties" > "$arguments")
    java -cp "$cp" -Dkafka.logs.dir="$data_dir" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
      @"$arguments" >"$data_dir/format.log" 2>&1 \
      || { rm -f "$arguments"; cat "$data_dir/format.log" >&2; exit 1; }
    rm -f "$arguments"
    touch "$data_dir/secured"
  fi
  java_options=(-Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true
    -Dkafka.logs.dir="$data_dir" -Dlog4j2.configurationFile="$here/log4j2.yaml")
  # Kafka 4 fetches a JWKS only from URLs this system property allows.
  [[ -n "$jwks_url" ]] && java_options+=("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$jwks_url")
  return 0
}

start() {
  if answers && running_pid >/dev/null; then
    echo "$address"; return 0
  fi
  prepare
  : > "$data_dir/server.log"
  nohup java "${java_options[@]}" -cp "$cp" kafka.Kafka "$data_dir/server.properties" \
    >"$data_dir/stdout.log" 2>&1 &
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
  # In the foreground, logging to stdout: a container's main process (docker-compose.yml).
  run) prepare; exec java "${java_options[@]}" -Dlog4j2.configurationFile="$here/log4j2-console.yaml" \
         -cp "$cp" kafka.Kafka "$data_dir/server.properties" ;;
  stop) stop ;;
  status) if answers; then echo "$address"; else echo "Kafka is not answering on $address" >&2; exit 1; fi ;;
  fetch) classpath >/dev/null ;;
  compose-secrets) compose_secrets "${2:-}" ;;
  *) echo "usage: $0 start|stop|status|run|fetch|compose-secrets DIR" >&2; exit 2 ;;
esac
