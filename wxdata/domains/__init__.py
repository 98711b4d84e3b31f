"""Domains: one module per White Cross domain, each the generic functions bound to its entity
plus the finders that domain needs. Importing this package registers every entity."""

from wxdata.domains import health_records, organisation, students

__all__ = ["health_records", "organisation", "students"]
