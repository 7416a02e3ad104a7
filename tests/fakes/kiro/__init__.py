"""A fake Kiro upstream on loopback: real HTTP/1.1, real event-stream frames, scripted faults.

`process.FakeKiro` starts the server (`python -m tests.fakes.kiro`, `__main__.py`) and drives its control API;
`server.py` serves chat, refresh and usage on gevent, `http.py` reads requests and writes with faults,
`script.py` turns a response spec into frames, `reasoning.py` issues reasoning signatures and checks native
reasoning fields and history, `state.py` holds tokens, scripts and counters, and `frames.py`
encodes event-stream frames (also used by bench/streamer.py and the tests). This file imports nothing: the
server process must patch gevent before anything imports socket or ssl.
"""
