"""`doctor`'s checks as data: configuration, token sources, clock, network, refresh, models, credits, chat,
shared state and port; the cheap ones also feed /health's warnings.

`check` holds the result type; `local` the checks that need no network (and /health's warnings); `remote`
the ones that talk to Kiro; `runner` runs them all in order for the command line.
"""
