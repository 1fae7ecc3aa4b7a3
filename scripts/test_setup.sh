#!/usr/bin/env bash
# What `make test` needs beyond the Python environments, on a fresh Debian 12 machine:
#   - system packages: chromium (the dashboard's browser tests, driven by Playwright; no browser download),
#     docker-compose (offline validation of docker/compose.yaml), postgresql and redis-server (the service
#     tests), python3-venv (the Makefile's `python3 -m venv`);
#   - PostgreSQL on 127.0.0.1:5432 (user postgres, trust on loopback) and Redis on 127.0.0.1:6379, started
#     when they are down.
# As root it installs and starts what is missing (apt-get); otherwise it prints exactly what to run and
# exits 1. Idempotent: on a ready machine it only checks. UNINOTE_TEST_POSTGRES_URL / UNINOTE_TEST_REDIS_URL
# pointing elsewhere skip the local service of that kind.
set -euo pipefail

up() { timeout 3 bash -c "echo > /dev/tcp/127.0.0.1/$1" 2>/dev/null; }
root() { [ "$(id -u)" -eq 0 ]; }
local_postgres() { [[ "${UNINOTE_TEST_POSTGRES_URL:-@127.0.0.1:5432}" == *"@127.0.0.1:5432"* ]]; }
local_redis() { [[ "${UNINOTE_TEST_REDIS_URL:-redis://127.0.0.1:6379}" == "redis://127.0.0.1:6379"* ]]; }

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
python3 -c "import ensurepip" 2>/dev/null || need+=(python3-venv)
if local_postgres && ! up 5432 && ! command -v pg_ctlcluster >/dev/null; then need+=(postgresql); fi
if local_redis && ! up 6379 && ! command -v redis-server >/dev/null; then need+=(redis-server); fi

if [ ${#need[@]} -gt 0 ]; then
  if ! root; then
    echo "make test needs these Debian packages: ${need[*]}. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    echo "then run make test again." >&2
    exit 1
  fi
  echo "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

start_postgres() {
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
  if [ -z "$version" ]; then echo "PostgreSQL is installed but has no cluster: run pg_createcluster" >&2; return 1; fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
}
start_redis() {
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/uninote-tests.log
}

down=()
if local_postgres && ! up 5432; then down+=(postgresql); fi
if local_redis && ! up 6379; then down+=(redis); fi
for service in "${down[@]}"; do
  if ! root; then
    echo "$service is not running on 127.0.0.1. Start it, e.g.:" >&2
    [ "$service" = postgresql ] && echo "  sudo pg_ctlcluster \$(ls /etc/postgresql) main start" >&2
    [ "$service" = redis ] && echo "  sudo redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''" >&2
    exit 1
  fi
  echo "starting $service"
  "start_$service"
done
for _ in $(seq 30); do
  { ! local_postgres || up 5432; } && { ! local_redis || up 6379; } && break
  sleep 1
done
if local_postgres && ! up 5432; then echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; fi
if local_redis && ! up 6379; then echo "Redis did not come up on 127.0.0.1:6379" >&2; exit 1; fi
if local_postgres && command -v psql >/dev/null && ! psql -h 127.0.0.1 -U postgres -Atc "SELECT 1" >/dev/null 2>&1; then
  hba="$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | sort -V | tail -1)"
  if ! root || [ -z "$hba" ]; then
    echo "PostgreSQL refuses user postgres on 127.0.0.1 without a password: add 'host all postgres 127.0.0.1/32" \
         "trust' at the top of pg_hba.conf and reload it, or set UNINOTE_TEST_POSTGRES_URL" >&2
    exit 1
  fi
  echo "letting user postgres in on 127.0.0.1 without a password (test machine): $hba"
  sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload
  sleep 1
fi
echo "test machine ready: chromium, docker-compose, PostgreSQL and Redis on 127.0.0.1"
