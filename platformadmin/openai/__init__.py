"""The OpenAI client layer: client construction, checks, services, rate limit, breaker, simulator.

Callers import the submodule they need (``platformadmin.openai.services`` for calls); nothing
outside this package imports the SDK.
"""
