"""Fake upstreams that speak real HTTP on loopback, for the tests and the benchmarks."""
