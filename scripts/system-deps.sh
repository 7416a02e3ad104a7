#!/bin/sh
# Installs the real servers the integration tests use (nginx, redis-server), and the headless browser the
# status page test drives (chromium), from Debian's packages, when they are missing and we are root with apt-get. Otherwise says what to install;
# outside CI the tests that need them then skip, under CI=true they fail.
set -e
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs npm"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"  # the benchmarks' load generator (tests/test_bench.py)
# A Python the image's uid 10001 can run (pyenv's under /root is not), for the image-start test (test_docker_config.py)
[ -x /usr/bin/python3.11 ] || missing="$missing python3.11"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "note: install$missing (e.g. sudo apt-get install$missing) to run the nginx/Redis/browser tests" >&2
fi
