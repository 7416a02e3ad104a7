"""The Kiro accounts behind the gateway: their logins, the state shared between processes, the pool.

Layers from the bottom up; a module imports only from its own layer or an earlier one (tests/test_import_graph.py):
- base: files (small JSON files, locks), protocols (what the state backends offer), credential (one login
  as data), config (the accounts file entries), cooldown (how long a refused account rests);
- state: file_state (the shared state in files), redis_link (the connection to Redis);
- redis tokens: redis_tokens (token records and refresh locks in Redis, written through to a file_state);
- redis state: redis_state (the shared state in Redis: RedisTokens plus account states, counters, claims,
  request windows, and what an outage held back);
- login: token_store (a login's persistence), refresh (its refresh calls), token_manager (its TokenManager);
- roster: roster (the accounts, this worker's view of their shared state, the counters);
- pool parts, each a part of the pool built on the roster: quarantine (suspended accounts), model_refusals
  (models Kiro refused an account), spending (credits charged, usage limits);
- pool: pool (which account serves a request, its limits, cooldowns, disabled logins);
- reports: status (the pool as plain data), credits (the credit poller);
- build: the pool assembled from settings, imported by the app factory only.
"""
