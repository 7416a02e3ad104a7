"""The HTTP layer around the routes: keys, CORS, body limits, client disconnects, SSE, keep-alives, gunicorn."""
