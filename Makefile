# Everyday commands. `make install` first; the others use the .venv it creates.
# Settings come from DJANGO_SETTINGS_MODULE (manage.py and celery default to local settings).
PY := .venv/bin/python
CELERY := .venv/bin/celery

.PHONY: install demo run migrate worker beat test lint bench

install:  ## create .venv with runtime and dev dependencies
	bash scripts/bootstrap.sh requirements-dev.txt

demo:  ## install, migrate, seed demo data, serve on 127.0.0.1:8000
	bash scripts/demo.sh

run:  ## development server (local settings)
	$(PY) manage.py runserver 127.0.0.1:8000

migrate:
	$(PY) manage.py migrate

worker:  ## Celery worker; needs REDIS_URL
	$(CELERY) -A marketplace worker --loglevel=INFO

beat:  ## the periodic scheduler (lease sweep); run exactly one per deployment
	mkdir -p var
	$(CELERY) -A marketplace beat --loglevel=INFO --schedule var/celerybeat-schedule

test:  ## the whole suite (PostgreSQL/Redis when reachable)
	bash scripts/test.sh

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench:  ## claim/submit throughput against gunicorn + PostgreSQL (see docs/BENCHMARKS.md)
	$(PY) bench/claim_submit.py --workers 64 --tasks 100000 --rate 150 --seconds 20
	$(PY) bench/claim_submit.py --workers 64 --tasks 100000 --seconds 20
