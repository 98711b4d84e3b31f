"""Queries: filters (``where`` trees), paging (offset and keyset), and the SQL compiler (PyPika,
one compiled statement per query shape)."""
