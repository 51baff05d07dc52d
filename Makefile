# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(CURDIR)/var
export DATA_DIR
# Debian packages the test suite starts real servers / browsers with.
TEST_DEBS := openssh-server openssh-client rclone chromium nginx fonts-dejavu-core systemd redis-server
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/portal

.PHONY: install install-test-deps run test test-sqlite test-postgres lint typecheck check clean screenshots

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install-test-deps: install
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages (run as root to install):$$missing"; exit 1; fi; \
	fi
	@test -x node_modules/.bin/azurite-blob || npm install --no-audit --no-fund --silent

# The demo's webhooks and destinations may point at servers on this machine;
# the egress guard refuses loopback unless told otherwise (README, "Egress guard").
run: export OUTBOUND_ALLOWED_NETWORKS ?= 127.0.0.0/8
# The demo delivers its session to a local folder, an operator feature that is
# off by default: `make run` allows DATA_DIR/delivered, for the demo only.
run: export DELIVERY_LOCAL_ROOTS ?= $(abspath $(DATA_DIR))/delivered
# The demo's webhook points at the portal's own Webhook inbox (demo/inbox.py),
# which answers 404 everywhere this is not set.
run: export DEMO_WEBHOOK_INBOX ?= true
run: install
	@mkdir -p "$(DATA_DIR)"
	$(PY) portal/bootstrap.py
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py createcachetable
	$(PY) manage.py collectstatic --noinput -v0
	@$(PY) manage.py setup_demo > "$(DATA_DIR)/demo.env"
	@$(PY) manage.py fill_demo || echo "demo session could not be simulated; the portal still runs"
	@. "$(DATA_DIR)/demo.env"; $(PY) manage.py runportal --login "Log in as $$DEMO_USERNAME / $$DEMO_PASSWORD (demo project APP_ID $$DEMO_APP_ID)"

test: install-test-deps check lint typecheck test-sqlite test-postgres

test-sqlite:
	$(PY) -m pytest -q -p no:cacheprovider

# Everything that touches the database layer again on PostgreSQL (the
# real-server destination tests and browser journeys do not depend on it).
test-postgres:
	DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest -q -p no:cacheprovider -m "pg or (not slow and not e2e)" tests/projects tests/webhooks tests/recordings tests/delivery tests/portal tests/demo

# The README's pictures: the browser journeys, saving into docs/screenshots
# (under `make test` they save into $$TMPDIR/portal-screenshots instead).
screenshots: install-test-deps
	PORTAL_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q -p no:cacheprovider -m e2e tests/e2e

lint: install
	$(PY) -m ruff check .

# PORTAL_TESTING: the settings use the fixed development keys (django-stubs
# imports them), so no secrets need to exist in DATA_DIR.
typecheck: install
	PORTAL_TESTING=1 $(PY) -m mypy projects webhooks recordings delivery portal demo

check: install
	@mkdir -p "$(DATA_DIR)"
	PORTAL_TESTING=1 $(PY) manage.py check
	PORTAL_TESTING=1 $(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) node_modules

# Delivery throughput against rclone, every kind, medians of 3 alternating runs
# (bench/README.md, Delivery), then SFTP end to end through a running portal
# (session end -> file_transfer, bench/end_to_end.py). Run as root: the Debian
# packages, and the test sshd creates its local users. The benches need no
# secrets (the delivering child uses the development keys, the portal processes
# their own test keys) and allow loopback for their test servers.
BENCH_SIZE_MB ?= 1024
BENCH_KINDS ?= s3,azure,sftp,scp,ftp,ftps
BENCH_E2E_SIZE_MB ?= 512
BENCH_E2E_KINDS ?= sftp,scp
# The server bench/delivery.py's FTP/FTPS run against (bench/vsftpd.py starts
# its own on a free port). Where systemd runs, installing the package starts
# Debian's vsftpd on port 21 and at every boot: a fresh install switches it off.
BENCH_DEBS := vsftpd
.PHONY: bench install-bench-deps
install-bench-deps: install-test-deps
	@if [ ! -x /usr/sbin/vsftpd ]; then \
	  if [ "$$(id -u)" != "0" ]; then echo "missing Debian packages (run as root to install): $(BENCH_DEBS)"; exit 1; fi; \
	  echo "installing Debian packages: $(BENCH_DEBS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_DEBS) >/dev/null || exit 1; \
	  if [ -d /run/systemd/system ]; then systemctl disable --now vsftpd.service || true; fi; \
	fi

bench: install-bench-deps
	@mkdir -p "$(DATA_DIR)"
	uptime
	$(PY) bench/delivery.py --size-mb $(BENCH_SIZE_MB) --kinds $(BENCH_KINDS) --repeat 3
	uptime
	$(PY) bench/end_to_end.py --size-mb $(BENCH_E2E_SIZE_MB) --kinds $(BENCH_E2E_KINDS) --repeat 3
	uptime
