# Helpers shared by the bench scripts (sourced, not run).

# Installs the Debian packages whose commands are missing: install_missing CMD:PACKAGE ...
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  # Debian starts the packaged services; they are not part of any measurement.
  systemctl stop nginx haproxy 2>/dev/null || true
}

# Waits (up to 10 s) until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not come up" >&2
  return 1
}

# Writes FILE: a Rampart config proxying 127.0.0.1:PROXY_PORT to 127.0.0.1:ORIGIN_PORT with what
# the peers lack turned off (detection, bans, the per-address cap, the cache, rate limits, health
# checks), for measuring the proxy path itself. Further arguments are more listeners (YAML flow maps).
# bench_proxy_config FILE PROXY_PORT ORIGIN_PORT [LISTENER ...]
bench_proxy_config() {
  local file=$1 proxy=$2 origin=$3 extra
  {
    echo "limits: {max_connections_per_ip: 100000}"
    echo "listeners:"
    echo "  - {address: 127.0.0.1:$proxy}"
    for extra in "${@:4}"; do echo "  - $extra"; done
    cat <<EOC
bans: {enabled: false}
sites:
  - name: bench
    hosts: ["*"]
    origins: [127.0.0.1:$origin]
    rate_limits: []
    cache: {enabled: false}
    detection: {enabled: false}
    health_check: {enabled: false}
EOC
  } > "$file"
}

# Prints the `sites:` block every drill benchmark gives Rampart: site `www` on any host in front of
# the drill's origin, with the drill's API keys and the session cookie its members hold (so the
# drill's members and API clients are known as such, as an operator would configure them).
# drill_sites ORIGIN_PORT MAX_CONNECTIONS
drill_sites() {
  cat <<EOC
sites:
  - name: www
    hosts: ["*"]
    origins:
      - {address: 127.0.0.1:$1, max_connections: $2}
    api_keys: [drill-api-key-0000, drill-api-key-0001, drill-api-key-0002, drill-api-key-0003, drill-api-key-0004]
    session_cookies: [sessionid]
EOC
}

# nginx temp-path directives pointing into DIR (nginx as an unprivileged, throwaway instance).
nginx_temp_paths() {
  echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"
}

# Starts nginx on 127.0.0.1:PORT serving a 612-byte static page from WORK/www (the origin of the
# throughput benchmarks); its pid file is WORK/nginx-origin.pid. start_static_origin WORK PORT
start_static_origin() {
  local work=$1 port=$2
  mkdir -p "$work/www" "$work/tmp"
  head -c 612 /dev/zero | tr '\0' 'x' > "$work/www/index.html"
  cat > "$work/origin.conf" <<EOC
worker_processes 1;
pid $work/nginx-origin.pid;
error_log $work/origin-error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off;
  $(nginx_temp_paths "$work/tmp")
  keepalive_requests 100000;
  server { listen 127.0.0.1:$port; root $work/www; location / { } }
}
EOC
  nginx -c "$work/origin.conf"
  wait_port "$port"
}

# CPU clock ticks (utime + stime) used so far by the given pids, summed: cpu_ticks PID...
cpu_ticks() {
  local total=0 p f
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")
    total=$((total + f[11] + f[12]))
  done
  echo $total
}

# Stops what a bench script started: the pids in its PIDS array, the nginx instances whose pid
# files are WORK/nginx-*.pid and a PostgreSQL cluster from start_postgres. Scripts set `trap stop_started EXIT`.
stop_started() {
  local p f
  for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done
  for f in "$WORK"/nginx-*.pid "$WORK"/postgres.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# Starts a throwaway PostgreSQL cluster in WORK/pg on 127.0.0.1:PORT (the fleet benchmarks'
# shared state): initdb with trust authentication for user `rampart`, no fsync. PostgreSQL refuses
# to run as root, so as root the folder is given to `nobody` and the server runs as that user.
# stop_started stops it through its pid file. start_postgres WORK PORT
start_postgres() {
  local work=$1 port=$2 bin run=()
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$bin/initdb" ] || { echo "PostgreSQL server binaries are missing (apt-get install postgresql)" >&2; return 1; }
  mkdir -p "$work/pg"
  if [ "$(id -u)" = 0 ]; then chown nobody: "$work/pg"; chmod 755 "$work"; run=(runuser -u nobody --); fi
  "${run[@]}" "$bin/initdb" -D "$work/pg/data" -U rampart -A trust -E UTF8 --no-sync >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 30 \
    -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100" start >/dev/null
  head -1 "$work/pg/data/postmaster.pid" > "$work/postgres.pid"
}

# Builds rampart and rampart-drill in release mode (ROOT is the package) and sets BIN to them.
build_release() {
  echo "building (release)" >&2
  (cd "$ROOT" && swift build -c release --product rampart >/dev/null && swift build -c release --product rampart-drill >/dev/null)
  BIN="$ROOT/.build/release"
}

# Starts the drill's counting origin on 127.0.0.1:PORT with CONCURRENCY workers of SERVICE_MS each
# (its log: WORK/origin.log), adds it to PIDS and waits for it; further arguments go to the origin.
# start_drill_origin PORT CONCURRENCY SERVICE_MS [ORIGIN_FLAG...]
start_drill_origin() {
  "$BIN/rampart-drill" origin --listen 127.0.0.1:"$1" --concurrency "$2" --service-ms "$3" "${@:4}" > "$WORK/origin.log" 2>&1 &
  PIDS+=($!)
  wait_port "$1"
}
