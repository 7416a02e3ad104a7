"""ki2api: an OpenAI- and Anthropic-compatible gateway to the Claude models of a Kiro subscription.

The package is layered: routes -> translate -> upstream, with the accounts below them and the HTTP layer
(web) and observability beside. The application factory is ki2api.app.create_app.

Importing the package loads nothing: gunicorn's master imports ki2api.settings and ki2api.web.gunicorn_hooks
(config/gunicorn.conf.py) before it forks the workers, and flask, requests and the modules built on them
must be imported first in a worker, after gevent has patched it.
"""
