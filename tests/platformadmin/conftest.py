"""Breaker and rate-limit state lives in the cache, keyed by things that are unique per
test (a key's fingerprint of a random secret, a project's public id), so tests never see
each other's counters and nothing here clears the cache: on a shared Redis a clear
would flush other runs' keys too.
"""
