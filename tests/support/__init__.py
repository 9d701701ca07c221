"""Shared test helpers: in-process servers (moto, a Storage-compatible server) and fixtures."""
