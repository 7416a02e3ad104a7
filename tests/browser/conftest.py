"""The browser tests start ki2api for real, like the integration tests (same fixtures)."""
from tests.integration.conftest import gateway_env, start_gateway  # noqa: F401  (fixtures)
