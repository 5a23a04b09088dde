# bench/lib.sh - what bench/run.sh and bench/batch.sh share: a work
# directory removed on exit (with the nginx in it), the envclone build, and
# a private nginx on 127.0.0.1 answering like Kontent.ai. Sourced, after
# the script has defined say().
#
#   bench_init NAME              $work: a fresh /tmp/NAME.XXXXXX, removed on exit
#   bench_build                  $build: ENVCLONE_BUILD's, or one built in $work
#   bench_nginx "LOCATIONS" [TOP [WRAPPER...]]
#                                nginx (1 worker, under WRAPPER, e.g. taskset)
#                                on a free loopback port: $PORT, $nginx_pid.
#                                LOCATIONS: nginx `location` blocks added to
#                                the Kontent stand-in's; TOP: lines before
#                                the events block (load_module)
#   bench_start_nginx "LOCATIONS" TOP [WRAPPER...]
#                                one try on $PORT as it is (1 if it fails): for
#                                a caller whose LOCATIONS depend on $PORT
#   bench_http_conf              (variable) lines added at the http level, e.g.
#                                log_format or ssl_session_cache (default none)

# shellcheck shell=bash
# shellcheck disable=SC2034 # work, build, PORT and nginx_pid are for the caller

bench_cleanup() {
  if [ -n "${nginx_pid:-}" ]; then
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}

bench_init() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  nginx_pid=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_build() {
  if [ -n "${ENVCLONE_BUILD:-}" ] && [ -f "$ENVCLONE_BUILD/envclone/core.so" ]; then
    build=$(cd "$ENVCLONE_BUILD" && pwd)
  else
    say "building envclone (RelWithDebInfo: -O2 -g) into $work/build"
    ENVCLONE_BUILD="$work/build" bash scripts/build.sh -DENVCLONE_TESTS=OFF >&2
    build="$work/build"
  fi
}

# A port nobody listens on (another nginx on the port would answer for ours).
bench_free_port() {
  lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); s:close(); print(p)' \
    2>/dev/null || echo $((${PORT:-18480} + 1))
}

bench_start_nginx() { # locations top wrapper...
  local locations=$1 top=$2
  shift 2
  mkdir -p "$work/nginx/logs"
  cat >"$work/nginx/nginx.conf" <<CONF
# A stand-in for Kontent.ai's cloning endpoints; loopback only.
$top
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  ${bench_http_conf:-}
  server {
    listen 127.0.0.1:$PORT backlog=1024;
    default_type application/json;
    location ~ ^/kontent/v2/projects/[0-9a-fA-F-]+/environment-cloning-state\$ {
      return 200 '{"cloning_state":"done"}';
    }
    location ~ ^/kontent/v2/projects/[0-9a-fA-F-]+/clone-environment\$ {
      return 200 '{"id":"71386f85-cddb-4cb0-aa54-988566feb9a1","management_api_key":"ey.bench","secured_delivery_api_key":null,"delivery_preview_api_key":null}';
    }
    $locations
    location / { return 404 '{"request_id":"bench","error_code":0,"message":"not found"}'; }
  }
}
CONF
  rm -f "$work/nginx/nginx.pid"
  "$@" nginx -e "$work/nginx/logs/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
  nginx_pid=$!
  # nginx writes its pid file once every listen socket is bound: with
  # several listeners, $PORT may accept while another bind is still being
  # retried (and then fails)
  for _ in $(seq 50); do
    if [ -s "$work/nginx/nginx.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
  return 1
}

bench_nginx() { # locations [top [wrapper...]]
  local locations=$1 top=${2:-}
  shift $(($# >= 2 ? 2 : 1))
  for _ in $(seq 10); do
    bench_start_nginx "$locations" "$top" "$@" && return 0
    PORT=$(bench_free_port)
  done
  say "could not start nginx"
  cat "$work/nginx/logs/error.log" >&2 2>/dev/null || true
  exit 1
}

# The instruction total of a callgrind output file (its summary or totals line).
cg_total() { sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$1" | head -1; }
