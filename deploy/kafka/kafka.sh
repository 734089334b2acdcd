#!/usr/bin/env bash
# Local Apache Kafka on 127.0.0.1 (KRaft, each node a combined broker and controller): one node
# for development, the demo and the tests, or a cluster of N (`--brokers 3`) as production runs. The broker comes from the official
# org.apache.kafka:kafka_2.13 artifacts on Maven Central, resolved by `mvn` from the POM beside
# this script and cached outside the work tree.
#
# It is secured as production is (docs/operations/security.md), with no plaintext listener:
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
#   ... start|stop|status --brokers N   a cluster of N nodes (the first start decides N; later
#                                  commands read it from the data directory): node I in
#                                  DATA/node-I, client port PORT + 2(I-1), controller port + 1;
#                                  start starts the nodes that are not running (after a node was
#                                  killed, it brings it back); the address printed is the list
#   ... start|stop|status --node I  only node I of the cluster (a drill: stop one, start it again)
#   deploy/kafka/kafka.sh fetch    only resolve the artifacts (used by CI to warm the cache)
#   deploy/kafka/kafka.sh run      prepare as `start` does, then run in the foreground (containers;
#                                  `run --brokers N --node I`: node I of a cluster whose nodes are
#                                  each a host of its own, NIR_KAFKA_NODES and NIR_KAFKA_PKI_DIR)
#   deploy/kafka/kafka.sh pki --brokers N   what a cluster's nodes must share, made once in
#                                  NIR_KAFKA_PKI_DIR: the CA certificate (ca.pem), one broker
#                                  certificate naming every node's host with its key (broker.pem)
#                                  and the cluster id (cluster.id). The CA's key stays in this
#                                  command's own data directory (tls/ca.key), out of the nodes' reach
#   deploy/kafka/kafka.sh compose-secrets DIR   make the files docker-compose.yml hands out as
#                                  secrets: each principal's password, the mask key, the workers'
#                                  certificate
#
# Environment (defaults in brackets):
#   NIR_KAFKA_PORT        client port [9092]; the controller listens on port + 1 (a cluster's
#                         node I: PORT + 2(I-1) and the next)
#   NIR_KAFKA_DATA_DIR    log dirs, pid file and server.log [$XDG_CACHE_HOME/nir-hub/kafka-data]
#   NIR_CACHE_DIR         Maven repository and classpath cache [$XDG_CACHE_HOME/nir-hub]
#   NIR_KAFKA_HEAP        JVM heap per node [512m; 384m in a cluster]
#   NIR_KAFKA_HOME        an installed Kafka whose libs/ to run instead of Maven's [none]
#   NIR_KAFKA_CREDENTIALS_DIR  where clients find tls/ca.pem and secrets/ [the data dir]
#   NIR_KAFKA_START_TIMEOUT  seconds to wait for the broker to answer [90]
#   NIR_KAFKA_HOST        a further host name in the broker's certificate, advertised instead
#                         of 127.0.0.1 (compose: kafka) [none]
#   NIR_KAFKA_NODES       each node's client address, host[:port] (port: NIR_KAFKA_PORT), comma-
#                         separated, node I the I-th, where the nodes are hosts of their own
#                         (compose: kafka:9092,kafka-2:9092,kafka-3:9092); controller port: the
#                         client port + 1. They are advertised, form controller.quorum.voters and
#                         are named in the broker's certificate [127.0.0.1 or NIR_KAFKA_HOST, with
#                         the ports above; the voters on 127.0.0.1]
#   NIR_KAFKA_PKI_DIR     where `pki` put the cluster's shared ca.pem, broker.pem and cluster.id:
#                         the nodes use these and make none of their own [none: each makes its own]
#   NIR_KAFKA_JWKS_URL    JWKS endpoint of Maskinporten (or its stand-in, `hub maskinporten
#                         stand-in`); enables OAUTHBEARER. It must answer when the broker starts.
#   NIR_KAFKA_OAUTH_ISSUER    the tokens' required issuer [the JWKS URL without "jwks"]
#   NIR_KAFKA_OAUTH_AUDIENCE  the tokens' required audience [nir-kafka]
set -euo pipefail

command="${1:-}"; shift || true
# NIR_KAFKA_NODES, one address a node; empty: the local nodes, on this host's ports.
IFS=, read -r -a node_addresses <<< "${NIR_KAFKA_NODES:-}"
brokers_asked="" only_node=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --brokers) brokers_asked="${2:?--brokers N}"; shift 2 ;;
    --node) only_node="${2:?--node I}"; shift 2 ;;
    *) [[ "$command" == compose-secrets ]] && { compose_dir="$1"; shift; continue; }
       echo "unknown option $1" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_dir="${NIR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nir-hub}"
data_dir="${NIR_KAFKA_DATA_DIR:-$cache_dir/kafka-data}"
port="${NIR_KAFKA_PORT:-9092}"
timeout="${NIR_KAFKA_START_TIMEOUT:-90}"
host="${NIR_KAFKA_HOST:-127.0.0.1}"

# How many nodes: decided by the first start and recorded, so stop and status need not be told.
brokers_file="$data_dir/brokers"
recorded="$(cat "$brokers_file" 2>/dev/null || true)"
named="${#node_addresses[@]}"
brokers="${brokers_asked:-${recorded:-$(( named > 0 ? named : 1 ))}}"
if [[ ! "$brokers" =~ ^[1-9]$ ]]; then echo "--brokers must be 1 to 9" >&2; exit 2; fi
if (( named > 0 && named != brokers )); then
  echo "NIR_KAFKA_NODES names $named node(s), not $brokers" >&2; exit 2
fi
if [[ -n "$recorded" && "$brokers" != "$recorded" ]]; then
  echo "the data in $data_dir is a cluster of $recorded node(s), not $brokers; remove that directory" \
    "(local data only) to start another" >&2
  exit 1
fi
if [[ -n "$only_node" ]] && ! (( only_node >= 1 && only_node <= brokers )); then
  echo "--node must be 1 to $brokers" >&2; exit 2
fi
heap="${NIR_KAFKA_HEAP:-$( (( brokers > 1 )) && echo 384m || echo 512m)}"
# A cluster keeps each partition on up to three nodes and acknowledges a write once two hold it.
replicas="$(( brokers < 3 ? brokers : 3 ))"
in_sync="$(( brokers < 2 ? brokers : 2 ))"

# Node $1's directory and ports: a single node keeps the data directory's top level.
node_dir() { if (( brokers == 1 )); then echo "$data_dir"; else echo "$data_dir/node-$1"; fi; }
# Node $1's host and client port: its entry of NIR_KAFKA_NODES, else this host and the port
# arithmetic of the local nodes.
node_host() {
  if (( named > 0 )); then local entry="${node_addresses[$1 - 1]}"; echo "${entry%%:*}"; else echo "$host"; fi
}
node_port() {
  local entry="${node_addresses[$1 - 1]:-}"
  if (( named == 0 )); then echo "$(( port + 2 * ($1 - 1) ))"
  elif [[ "$entry" == *:* ]]; then echo "${entry##*:}"
  else echo "$port"; fi
}
controller_port() { echo "$(( $(node_port "$1") + 1 ))"; }
# Where the other nodes reach node $1's controller: local nodes on 127.0.0.1, as before; nodes on
# hosts of their own at their host.
controller_host() { if (( named > 0 )); then node_host "$1"; else echo 127.0.0.1; fi; }
# The address a listener binds: loopback for 127.0.0.1 (only this machine reaches it), else all.
bind_host() { if [[ "$1" == 127.0.0.1 ]]; then echo 127.0.0.1; else echo 0.0.0.0; fi; }
address() {
  local i list=""
  for i in $(seq 1 "$brokers"); do list="$list${list:+,}$(node_host "$i"):$(node_port "$i")"; done
  echo "$list"
}
voters() {
  local i list=""
  for i in $(seq 1 "$brokers"); do list="$list${list:+,}$i@$(controller_host "$i"):$(controller_port "$i")"; done
  echo "$list"
}
# The nodes a command is about: --node I, else all.
nodes() { if [[ -n "$only_node" ]]; then echo "$only_node"; else seq 1 "$brokers"; fi; }
tls_dir="$data_dir/tls"   # the CA's and the broker's keys: the broker's alone
# What the nodes use: a cluster's shared PKI (NIR_KAFKA_PKI_DIR, made by `pki`), else their own.
pki_dir="${NIR_KAFKA_PKI_DIR:-}"
if [[ -n "$pki_dir" && "$command" != pki ]]; then
  keystore="$pki_dir/broker.pem" truststore="$pki_dir/ca.pem" cluster_id_file="$pki_dir/cluster.id"
else
  keystore="$tls_dir/broker.pem" truststore="$tls_dir/ca.pem" cluster_id_file="$data_dir/cluster.id"
fi
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
  (exec 3<>"/dev/tcp/127.0.0.1/$(node_port "$1")") 2>/dev/null \
    && grep -q "Kafka Server started" "$(node_dir "$1")/server.log" 2>/dev/null
}

all_answer() {
  local i
  for i in $(nodes); do answers "$i" || return 1; done
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

# The subject alternative names of the broker's certificate: 127.0.0.1, localhost,
# NIR_KAFKA_HOST and every node's host (one certificate serves every node of a cluster).
broker_names() {
  local san="DNS:localhost,IP:127.0.0.1" name i
  for name in "$host" $(for i in $(seq 1 "$brokers"); do node_host "$i"; done); do
    if [[ "$name" =~ ^[0-9.]+$ ]]; then name="IP:$name"; else name="DNS:$name"; fi
    [[ ",$san," == *",$name,"* ]] || san="$san,$name"
  done
  echo "$san"
}

# The local CA and the broker's certificate (for the names above).
# broker.pem holds the PKCS#8 key and the chain, as Kafka's PEM keystore reads.
make_certificates() {
  [[ -s "$tls_dir/broker.pem" ]] && return 0
  make_ca "$tls_dir"
  local san; san="$(broker_names)"
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
  # The password of the register's role nir_gateway, the gateway's (deploy/postgres/roles.sh).
  [[ -s "$dir/nir-gateway-db.password" ]] || (umask 077; openssl rand -hex 32 > "$dir/nir-gateway-db.password")
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
  local pid_file; pid_file="$(node_dir "$1")/kafka.pid"
  [[ -f "$pid_file" ]] || return 1
  local pid; pid="$(cat "$pid_file")"
  # A node just killed can linger a moment as a zombie, which kill -0 still finds.
  kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]] && echo "$pid"
}

write_config() {
  local node="$1" dir mechanisms="SCRAM-SHA-512" oauth=""
  dir="$(node_dir "$node")"
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
  mkdir -p "$dir"
  (umask 077; cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$(voters)
listeners=CLIENT://$(bind_host "$(node_host "$node")"):$(node_port "$node"),CONTROLLER://$(bind_host "$(controller_host "$node")"):$(controller_port "$node")
advertised.listeners=CLIENT://$(node_host "$node"):$(node_port "$node")
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CONTROLLER:SSL,CLIENT:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=$keystore
ssl.truststore.type=PEM
ssl.truststore.location=$truststore
ssl.endpoint.identification.algorithm=https
listener.name.controller.ssl.client.auth=required
sasl.enabled.mechanisms=$mechanisms
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="nir-broker" password="$(password_of nir-broker)";
$oauth
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:CN=nir-broker;User:nir-broker;User:nir-admin
log.dirs=$dir/logs
# The hub creates its topics with explicit partition counts; nothing is created by accident.
auto.create.topics.enable=false
num.partitions=1
# Kafka's own topics (the groups' offsets, the transactions' state) as durable as the hub's:
# on up to three nodes, a write acknowledged once two hold it (one node: itself).
default.replication.factor=$replicas
min.insync.replicas=$in_sync
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$in_sync
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$in_sync
group.initial.rebalance.delay.ms=0
PROPS
  )
}

# A new cluster id, as Kafka makes one.
make_cluster_id() {
  [[ -s "$1" ]] || java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null > "$1"
}

# What every node of a cluster shares, made once (see `pki` above); a second run keeps it, and
# fails if a node's host is not in the certificate (a changed NIR_KAFKA_NODES: remove the PKI
# directory and this data directory to issue another).
pki() {
  [[ -n "$pki_dir" ]] || { echo "pki needs NIR_KAFKA_PKI_DIR" >&2; exit 2; }
  mkdir -p "$data_dir" "$pki_dir"; chmod 700 "$pki_dir"   # the broker's key: the nodes' alone
  cp="$(classpath)"
  make_certificates
  (umask 077
   [[ -s "$pki_dir/broker.pem" ]] || { cp "$tls_dir/broker.pem" "$pki_dir/broker.pem.tmp" \
     && mv "$pki_dir/broker.pem.tmp" "$pki_dir/broker.pem"; })
  [[ -s "$pki_dir/ca.pem" ]] || cp "$tls_dir/ca.pem" "$pki_dir/ca.pem"
  make_cluster_id "$data_dir/cluster.id"
  [[ -s "$pki_dir/cluster.id" ]] || cp "$data_dir/cluster.id" "$pki_dir/cluster.id"
  local i name names
  names="$(openssl x509 -in "$pki_dir/broker.pem" -noout -ext subjectAltName | tail -n 1 | sed 's/^ *//')"
  for i in $(seq 1 "$brokers"); do
    name="$(node_host "$i")"
    if [[ "$name" =~ ^[0-9.]+$ ]]; then name="IP Address:$name"; else name="DNS:$name"; fi
    [[ ", $names," == *", $name,"* ]] || {
      echo "the broker certificate in $pki_dir does not name node $i's host ($name); remove" \
        "$pki_dir and $data_dir to issue another" >&2; exit 1; }
  done
  echo "$pki_dir"
}

# Certificates, passwords, configuration and formatted storage of node $1: everything before
# its JVM.
prepare() {
  local node="$1" dir
  dir="$(node_dir "$node")"
  mkdir -p "$data_dir"
  cp="$(classpath)"
  if [[ -n "$pki_dir" ]]; then
    [[ -s "$keystore" && -s "$truststore" && -s "$cluster_id_file" ]] || {
      echo "no certificate or cluster id in $pki_dir: run \`kafka.sh pki\` first" >&2; exit 1; }
  else
    make_certificates
    make_web_certificate
  fi
  if [[ "$credentials_dir" != "$data_dir" ]]; then
    # Replaced whole, and only when it differs: the nodes of a cluster share this file, and a
    # client reading it meanwhile must not find half of one.
    mkdir -p "$credentials_dir/tls"
    cmp -s "$truststore" "$credentials_dir/tls/ca.pem" || {
      cp "$truststore" "$credentials_dir/tls/ca.pem.$node.tmp"
      mv "$credentials_dir/tls/ca.pem.$node.tmp" "$credentials_dir/tls/ca.pem"; }
  fi
  write_config "$node"
  if [[ -f "$dir/logs/meta.properties" && ! -f "$dir/secured" ]]; then
    echo "the broker's data in $dir was formatted by an earlier kafka.sh, without the" \
      "credentials of its principals; remove that directory (local data only) and start again" >&2
    exit 1
  fi
  if [[ ! -f "$dir/logs/meta.properties" ]]; then
    # The broker's and the admin's SCRAM credentials are written into the metadata log at
    # format time: there is no one yet who could create them through the admin API. The storage
    # tool takes them only as arguments, so they go in a java @argument file (0600, removed
    # after): the launcher reads the main class and its arguments from it, and no process's
    # command line, which every local user can read in /proc, holds a password. Every node of
    # a cluster is formatted with the same cluster id.
    local arguments="$dir/format.args"
    make_cluster_id "$cluster_id_file"
    (umask 077; printf '"%s"\n' kafka.tools.StorageTool format --ignore-formatted -t "$(cat "$cluster_id_file")" \
      --add-scram "SCRAM-SHA-512=[name=nir-broker,password=$(password_of nir-broker)]" \
      --add-scram "SCRAM-SHA-512=[name=nir-admin,password=$(password_of nir-admin)]" \
      -c "$dir/server.properties" > "$arguments")
    java -cp "$cp" -Dkafka.logs.dir="$dir" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
      @"$arguments" >"$dir/format.log" 2>&1 \
      || { rm -f "$arguments"; cat "$dir/format.log" >&2; exit 1; }
    rm -f "$arguments"
    touch "$dir/secured"
  fi
  echo "$brokers" > "$brokers_file"
  java_options=(-Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true
    -Dkafka.logs.dir="$dir" -Dlog4j2.configurationFile="$here/log4j2.yaml")
  # Kafka 4 fetches a JWKS only from URLs this system property allows.
  [[ -n "$jwks_url" ]] && java_options+=("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=$jwks_url")
  return 0
}

start() {
  local i dir
  # Every node that is not running first, then wait for all: a cluster's nodes start only
  # together (a controller quorum needs a majority).
  for i in $(nodes); do
    if answers "$i" && running_pid "$i" >/dev/null; then continue; fi
    running_pid "$i" >/dev/null && continue  # still starting
    prepare "$i"
    dir="$(node_dir "$i")"
    : > "$dir/server.log"
    nohup java "${java_options[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" \
      >"$dir/stdout.log" 2>&1 &
    echo $! > "$dir/kafka.pid"
  done
  local waited=0
  until all_answer; do
    for i in $(nodes); do
      if ! running_pid "$i" >/dev/null; then
        dir="$(node_dir "$i")"
        echo "Kafka node $i exited while starting; last lines of $dir/stdout.log and server.log:" >&2
        tail -n 30 "$dir/stdout.log" "$dir/server.log" >&2
        exit 1
      fi
    done
    if (( waited >= timeout * 2 )); then
      echo "Kafka did not answer on $(address) within ${timeout}s; see server.log in $data_dir" >&2
      exit 1
    fi
    sleep 0.5; waited=$((waited + 1))
  done
  address
}

stop() {
  # Every node is asked at once: one by one, the last nodes of a cluster lose their controllers'
  # quorum and wait out their controlled shutdown for nothing.
  local i pid pids=() stopped=""
  for i in $(nodes); do
    pid="$(running_pid "$i")" || continue
    kill "$pid"
    pids+=("$pid")
    stopped=1
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for i in $(nodes); do rm -f "$(node_dir "$i")/kafka.pid"; done
  if [[ -n "$stopped" ]]; then echo "Kafka stopped"; else echo "Kafka is not running"; fi
}

case "$command" in
  start) start ;;
  # In the foreground, logging to stdout: a container's main process (docker-compose.yml).
  run) node="${only_node:-1}"; prepare "$node"
       # Only this run's start counts for `status` (the healthcheck): log4j2-console.yaml
       # writes the broker's start to server.log besides stdout.
       : > "$(node_dir "$node")/server.log"
       exec java "${java_options[@]}" -Dlog4j2.configurationFile="$here/log4j2-console.yaml" \
         -cp "$cp" kafka.Kafka "$(node_dir "$node")/server.properties" ;;
  stop) stop ;;
  status) if all_answer; then address; else echo "Kafka is not answering on $(address)" >&2; exit 1; fi ;;
  fetch) classpath >/dev/null ;;
  pki) pki ;;
  compose-secrets) compose_secrets "${compose_dir:-}" ;;
  *) echo "usage: $0 start|stop|status|run [--brokers N] [--node I] | pki --brokers N | fetch | compose-secrets DIR" >&2; exit 2 ;;
esac
