"""Aggregate mode: many SV1 miners on few SV1 pool connections (sans-I/O cores)."""
