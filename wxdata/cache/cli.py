"""``wxdata cache stats`` and ``wxdata cache clear``.

``stats`` prints the counters every process published to Redis (hits, misses, hit rate as a
fraction 0..1, sets, deletes, evictions, errors...) with the namespace's key count and memory, per
entity; with the memory backend there is nothing shared to read, so it explains that counters live
in each process (``CacheManager.stats()``). ``clear --yes`` deletes every entry of the namespace
(SCAN, never KEYS or FLUSHDB) and tells every process to empty its memory tier.
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from wxdata._cli import CliError, Exit, redis_error, to_json
from wxdata.cache.backends.clients import FAULTS
from wxdata.cache.backends.redis import RedisCache, make_client
from wxdata.cache.crypto import Envelope, key_hash_key
from wxdata.cache.keys import PREFIX, KeyBuilder
from wxdata.cache.stats import CacheStats, snapshot
from wxdata.config import ConfigError, Settings, load_settings


def _redis(config: Settings, prefix: str) -> RedisCache:
    if config.redis_url is None or config.cache_key is None:
        raise ConfigError("REDIS_URL and CACHE_KEY are required to inspect a redis/tiered cache")
    keys = KeyBuilder(key_hash_key(config.cache_key), prefix)
    envelope = Envelope(config.cache_key, encrypt=config.cache_encrypt_phi)
    return RedisCache(make_client(config.redis_url, socket_timeout=5.0), keys, envelope)


def shared_stats(config: Settings, prefix: str = PREFIX) -> CacheStats:
    """Counters published by every process, with the namespace's key facts."""
    cache = _redis(config, prefix)
    try:
        count, total, keys, sizes = cache.facts()
        local = cache.stats()  # for the per-entity labels of key facts
        return snapshot(config.cache_backend, cache.shared_counters(), keys=count,
                        memory_bytes=total,
                        keys_by_entity={k: v.keys for k, v in local.entities.items()},
                        bytes_by_entity={k: v.memory_bytes for k, v in local.entities.items()},
                        details={"redis_breaker": local.details.get("breaker"),
                                 "prefix": prefix, "entries_scanned": sum(keys.values()),
                                 "bytes_scanned": sum(sizes.values())})
    finally:
        cache.close()


def render(stats: CacheStats) -> str:
    """A plain-text table of a stats snapshot."""
    cols = ("hits", "misses", "hit_rate", "sets", "deletes", "evictions", "errors", "keys",
            "memory_bytes")
    lines = [f"backend: {stats.backend}   keys: {stats.keys}   memory: {stats.memory_bytes} bytes"
             f"   hit rate: {stats.hit_rate:.3f} (fraction 0..1)"]
    header = f"{'entity':<24}" + "".join(f"{c:>13}" for c in cols)
    lines += [header, "-" * len(header)]

    def row(name: str, values: dict[str, Any]) -> str:
        cells = "".join(
            f"{values[c]:>13.3f}" if c == "hit_rate" else f"{values[c]:>13}" for c in cols)
        return f"{name:<24}{cells}"

    for name, e in sorted(stats.entities.items()):
        lines.append(row(name, e.to_dict()))
    lines.append(row("TOTAL", stats.total.to_dict()))
    return "\n".join(lines)


def _local_only(config: Settings, as_json: bool, text: str) -> int:
    """Nothing shared to read: say why (as JSON with ``--json``)."""
    if as_json:
        print(to_json({"backend": config.cache_backend, "enabled": config.cache_enabled,
                       "shared": False, "message": text}))
    else:
        print(text)
    return Exit.OK


def _cmd_stats(args: argparse.Namespace) -> int:
    config = load_settings()
    if not config.cache_enabled:
        return _local_only(config, args.json, "caching is disabled (CACHE_ENABLED=false)")
    if config.cache_backend == "memory":
        return _local_only(config, args.json,
                           "CACHE_BACKEND=memory: counters live in each application process "
                           "(CacheManager.stats()); nothing is shared to read here.")
    try:
        stats = shared_stats(config, args.prefix)
    except FAULTS as exc:
        raise redis_error(exc, config.redis_url) from None
    print(to_json(stats.to_dict()) if args.json else render(stats))
    return Exit.OK


def _cmd_clear(args: argparse.Namespace) -> int:
    if not args.yes:
        raise CliError(Exit.USAGE, "refusing to clear without --yes",
                       f"add --yes to delete every entry under {args.prefix}:")
    config = load_settings()
    if config.cache_backend == "memory" or not config.cache_enabled:
        return _local_only(config, args.json,
                           "nothing to clear: the memory backend lives in each application "
                           "process")
    cache = _redis(config, args.prefix)
    try:
        cache.clear()
        message = json.dumps({"c": True, "o": "cli", "i": f"cli:{uuid.uuid4().hex}"})
        channel = f"{cache.layout.bus_base}:inval"
        client = cache.client
        receivers = (client.spublish(channel, message) if cache.topology == "cluster"
                     else client.publish(channel, message))
    except FAULTS as exc:
        raise redis_error(exc, config.redis_url) from None
    finally:
        cache.close()
    if args.json:
        print(to_json({"cleared": args.prefix, "processes_told": receivers}))
    else:
        print(f"cleared {args.prefix}:* ; {receivers} process(es) told to empty their memory "
              "tier")
    return Exit.OK


def register_stats(sub: Any) -> None:
    """``wxdata cache stats``."""
    stats = sub.add_parser("stats", help="hits, misses, hit rate, errors, keys, memory per entity")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument("--prefix", default=PREFIX, help="key namespace (default white-cross)")
    stats.set_defaults(handler=_cmd_stats)


def register_clear(sub: Any) -> None:
    """``wxdata cache clear``."""
    clear = sub.add_parser("clear", help="delete every cache entry (all processes)")
    clear.add_argument("--yes", action="store_true", help="really clear")
    clear.add_argument("--prefix", default=PREFIX, help="key namespace (default white-cross)")
    clear.add_argument("--json", action="store_true", help="print JSON")
    clear.set_defaults(handler=_cmd_clear)


def register(subparsers: Any) -> None:
    """Add ``cache stats`` and ``cache clear`` to the ``wxdata`` command."""
    parser = subparsers.add_parser("cache", help="cache statistics and maintenance")
    sub = parser.add_subparsers(dest="cache_command", required=True, metavar="SUBCOMMAND")
    register_stats(sub)
    register_clear(sub)
