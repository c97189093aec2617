# Load and soak test of the server (loopback only, bounded, stops by itself):
# wrk on /health while audits run and slow clients hold connections, then 50
# audits in a row with resident memory compared. Figures go to the README.

.PHONY: load

## load: tests/load/load.py against a seeded moto; LOAD_SECONDS (default 10).
load: venv
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(CARGO) build --release --locked
	$(PY) tests/load/load.py
