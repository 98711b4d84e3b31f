"""What may be cached, where, and for how long: sensitivity, TTLs, and the start-up refusals.

- *Sensitive* entities are those whose reads are audited (any PHI or FERPA column, or no entity
  declared at all): their keys are keyed hashes with no identifier, their Redis values are
  AES-GCM encrypted, and every cache hit is recorded as a disclosure.
- TTL: the ``ttl=`` given to ``cached``, else the entity's class (``Entity.cache_ttl``, the
  original's per-entity table: HealthRecord SHORT, Allergy LONG, ChronicCondition MEDIUM, Student
  LONG, StudentMedication SHORT, User LONG, Appointment SHORT, Vaccination MEDIUM, Screening
  MEDIUM, VitalSigns SHORT, District/School/Role/Permission DAY; MEDIUM otherwise), else
  ``CACHE_DEFAULT_TTL`` for functions with no entity. PHI is capped at :data:`PHI_TTL_CEILING`
  (MEDIUM, 900 s) in every tier: correctness never depends on the TTL (writes invalidate), so the
  TTL only bounds how long health data sits outside the system of record — at most one typical
  session idle timeout. A Student (LONG in the original) is therefore cached 900 s.
- Secrets are never cached: row types cannot carry secret columns (checked when a row type is
  registered) and a value holding a secret column name as a key is refused.
- Redis holds PHI only encrypted: building a Redis or tiered cache without ``CACHE_ENCRYPT_PHI=true``
  and a ``CACHE_KEY`` raises :class:`CachePolicyError` at configuration time (unless the caller
  explicitly chooses ``phi="bypass"``: sensitive reads then skip the cache entirely).
"""

from __future__ import annotations

from typing import Any

from wxdata.config import ConfigError, Settings
from wxdata.schema.spec import CacheTTL, Entity

#: Longest time a PHI value stays in any cache tier.
PHI_TTL_CEILING = int(CacheTTL.MEDIUM)

#: The original system's ENTITY_CACHE_TTL (study §3.4), by entity name; MEDIUM for the rest.
ORIGINAL_ENTITY_TTL: dict[str, int] = {
    "HealthRecord": CacheTTL.SHORT, "Allergy": CacheTTL.LONG, "ChronicCondition": CacheTTL.MEDIUM,
    "Student": CacheTTL.LONG, "StudentMedication": CacheTTL.SHORT, "User": CacheTTL.LONG,
    "Appointment": CacheTTL.SHORT, "Vaccination": CacheTTL.MEDIUM, "Screening": CacheTTL.MEDIUM,
    "VitalSigns": CacheTTL.SHORT, "District": CacheTTL.DAY, "School": CacheTTL.DAY,
    "Role": CacheTTL.DAY, "Permission": CacheTTL.DAY,
}


class CachePolicyError(ConfigError):
    """The cache configuration would break a PHI rule (e.g. PHI in Redis without encryption)."""


def is_sensitive(entity: Entity[Any] | None) -> bool:
    """PHI or FERPA data (or unknown data: no entity declared) — encrypted, keyed, audited."""
    return entity is None or entity.audit_reads


def ttl_for(entity: Entity[Any] | None, ttl: float | None, default_ttl: float,
            phi_ceiling: float = PHI_TTL_CEILING) -> float:
    """Seconds an entry lives: explicit, else the entity's class, else the default; PHI capped."""
    if ttl is not None:
        base = float(ttl)
    elif entity is not None:
        base = float(entity.cache_ttl)
    else:
        base = float(default_ttl)
    if entity is None or entity.is_phi:
        base = min(base, float(phi_ceiling))
    if base <= 0:
        raise ValueError("cache TTL must be positive")
    return base


def check_settings(config: Settings, *, phi: str = "encrypt") -> None:
    """Refuse configurations that would put PHI in Redis in clear (raises CachePolicyError)."""
    if phi not in ("encrypt", "bypass"):
        raise ValueError("phi must be 'encrypt' or 'bypass'")
    if not config.cache_enabled or config.cache_backend == "memory":
        return
    if config.redis_url is None:
        raise CachePolicyError("REDIS_URL is required when CACHE_BACKEND is redis or tiered")
    if config.cache_key is None:
        raise CachePolicyError(
            "CACHE_KEY is required when CACHE_BACKEND is redis or tiered (it keys the hashes "
            "that keep identifiers out of cache keys)")
    if phi == "encrypt" and not config.cache_encrypt_phi:
        raise CachePolicyError(
            "CACHE_ENCRYPT_PHI must be true to cache PHI in Redis (CACHE_BACKEND="
            f"{config.cache_backend}); refusing to start")
