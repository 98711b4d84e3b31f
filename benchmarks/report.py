"""Reporting: the Markdown tables ("A / B" summary, details, targets, school day,
scaling), the JSON of every sample, and the PNG chart of the ratios (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Report, Result, fmt_us

FAMILIES = (
    ("raw", "raw psycopg"),
    ("raw_audit", "raw + same audit SQL"),
    ("floor", "raw + leanest durable record"),
    ("wx", "wxdata (audited)"),
    ("wx_noaudit", "wxdata (audit off)"),
    ("core", "SQLAlchemy 2 Core"),
    ("orm", "SQLAlchemy 2 ORM"),
)


def _configs(results: Iterable[Result]) -> list[str]:
    return sorted({r.config for r in results})


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _find(results: list[Result], section: str, workload: str, family: str, config: str,
          scale: int | None = None) -> Result | None:
    for r in results:
        if (r.section == section and r.workload.startswith(workload) and r.family == family
                and r.config == config and r.scale == scale):
            return r
    return None


def _ratio(r: Result | None) -> str:
    return "—" if r is None or r.ratio is None else f"{r.ratio:.2f}x"


def _slash(parts: list[str]) -> str:
    return " / ".join(parts)


# --- summary -----------------------------------------------------------------------------------


def summary(results: list[Result]) -> str:
    """One row per workload, ratio to raw psycopg per family, "A / B"."""
    main = [r for r in results if r.section == "main"]
    configs = _configs(main)
    if not main:
        return ""
    head = "| workload | " + " | ".join(label for _, label in FAMILIES) + " |"
    lines = [head, "|---" * (len(FAMILIES) + 1) + "|"]
    for wl in _ordered(r.workload for r in main):
        cells = []
        for family, _ in FAMILIES:
            found = [_find(main, "main", wl, family, c) for c in configs]
            if all(f is None for f in found):
                cells.append("—")
            elif family == "raw":
                times = _slash([fmt_us(f.median) if f else "—" for f in found])
                cells.append(f"1.00 ({times})")
            else:
                cells.append(_slash([_ratio(f) for f in found]))
        lines.append(f"| {wl} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details(results: list[Result], section: str) -> str:
    """Every variant: median µs per op, min-max over repetitions, ratio — per configuration."""
    rows = [r for r in results if r.section == section]
    if not rows:
        return ""
    configs = _configs(rows)
    head = "| workload | variant | " + " | ".join(
        f"{c}: median (min-max) | {c}: ratio" for c in configs) + " |"
    lines = [head, "|---" * (2 + 2 * len(configs)) + "|"]
    keys = _ordered(f"{r.scale or ''}\x00{r.workload}\x00{r.variant}" for r in rows)
    for key in keys:
        scale, wl, variant = key.split("\x00")
        cells = []
        for c in configs:
            f = next((r for r in rows if r.workload == wl and r.variant == variant
                      and r.config == c and str(r.scale or "") == scale), None)
            if f is None:
                cells += ["—", "—"]
            else:
                cells += [f"{fmt_us(f.median)} ({fmt_us(f.lo)}-{fmt_us(f.hi)})", _ratio(f)]
        label = f"{wl} @ {int(scale):,} students" if scale else wl
        lines.append(f"| {label} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A ratio of two results (numerator/denominator) that must stay at or under/over a bound."""

    label: str
    workload: str
    num: str
    den: str
    op: str  # "<=" or ">="
    bounds: dict[str, float]


TARGETS = (
    Target("fetch by id: wxdata (audit off) / raw psycopg ≤ 1.1x (A), 1.2x (B)", "fetch by id",
           "wx_noaudit", "raw", "<=", {"A": 1.1, "B": 1.2}),
    Target("fetch by id: wxdata audited / raw with the same audit SQL ≤ 1.1x, 1.2x", "fetch by id",
           "wx", "raw_audit", "<=", {"A": 1.1, "B": 1.2}),
    Target("fetch by id, strict: wxdata audited / bare raw SELECT ≤ 1.1x, 1.2x", "fetch by id",
           "wx", "raw", "<=", {"A": 1.1, "B": 1.2}),
    Target("fetch by id: ORM / wxdata (audit off) ≥ 2.5x (A), 5x (B)", "fetch by id", "orm",
           "wx_noaudit", ">=", {"A": 2.5, "B": 5.0}),
    Target("fetch by id, strict: ORM (no audit) / wxdata audited ≥ 2.5x, 5x", "fetch by id", "orm",
           "wx", ">=", {"A": 2.5, "B": 5.0}),
    Target("page + total: wxdata (audit off, 1 statement) / raw 2 queries ≤ 1.0x", "page of 20",
           "wx_noaudit", "raw", "<=", {"A": 1.0, "B": 1.0}),
    Target("page + total, strict: wxdata audited / raw 2 queries (no audit) ≤ 1.0x", "page of 20",
           "wx", "raw", "<=", {"A": 1.0, "B": 1.0}),
    Target("single create: wxdata (audit off) / raw INSERT ≤ 1.05x", "single create", "wx_noaudit",
           "raw", "<=", {"A": 1.05, "B": 1.05}),
    Target("single create: wxdata audited / raw with the same audit SQL ≤ 1.05x", "single create",
           "wx", "raw_audit", "<=", {"A": 1.05, "B": 1.05}),
    Target("update by id: wxdata (audit off) / raw UPDATE ≤ 1.1x", "update by id", "wx_noaudit",
           "raw", "<=", {"A": 1.1, "B": 1.1}),
    Target("update by id: wxdata audited / raw with the same audit SQL ≤ 1.1x", "update by id", "wx",
           "raw_audit", "<=", {"A": 1.1, "B": 1.1}),
    Target("bulk create: wxdata audited / raw COPY ≤ 1.3x", "bulk create", "wx", "raw", "<=",
           {"A": 1.3, "B": 1.3}),
    Target("bulk create: ORM add_all / wxdata audited ≥ 10x", "bulk create", "orm", "wx", ">=",
           {"A": 10.0, "B": 10.0}),
    Target("audited create: wxdata audited / bare unaudited raw INSERT ≤ 1.15x (A)", "single create",
           "wx", "raw", "<=", {"A": 1.15}),
)


def target_rows(results: list[Result]) -> list[dict[str, Any]]:
    """Each target's measured value and verdict per configuration."""
    out = []
    main = [r for r in results if r.section == "main"]
    for t in TARGETS:
        row: dict[str, Any] = {"target": t.label}
        for c in _configs(main):
            n = _find(main, "main", t.workload, t.num, c)
            d = _find(main, "main", t.workload, t.den, c)
            if n is None or d is None:
                continue
            value = n.median / d.median
            bound = t.bounds.get(c)
            met = None if bound is None else (value <= bound if t.op == "<=" else value >= bound)
            row[c] = {"value": value, "bound": bound, "met": met}
        out.append(row)
    return out


def targets(results: list[Result]) -> str:
    """The speed targets, measured, with an honest verdict."""
    rows = target_rows(results)
    configs = _configs([r for r in results if r.section == "main"])
    if not rows or not configs:
        return ""
    lines = ["| target | " + " | ".join(configs) + " | verdict |", "|---" * (len(configs) + 2) + "|"]
    for row in rows:
        cells, verdicts = [], []
        for c in configs:
            v = row.get(c)
            if v is None:
                cells.append("—")
                continue
            cells.append(f"{v['value']:.2f}x")
            if v["met"] is not None:
                verdicts.append(f"{c} {'met' if v['met'] else 'MISSED'}")
        lines.append(f"| {row['target']} | " + " | ".join(cells) + f" | {', '.join(verdicts) or '—'} |")
    return "\n".join(lines)


# --- the audited-performance targets ----------------------------------------------------------

#: Gap to the floor within which a target the floor itself misses is reported as "floor".
FLOOR_GAP = 1.15


@dataclass(frozen=True)
class Pick:
    """A result by section, workload title (exact, or prefix when it ends with ``*``) and family
    or variant name."""

    section: str
    workload: str
    family: str = ""
    variant: str = ""

    def find(self, results: list[Result], config: str) -> Result | None:
        """The result this names in ``config``, if measured."""
        for r in results:
            if r.config != config or r.section != self.section:
                continue
            title = (r.workload.startswith(self.workload[:-1]) if self.workload.endswith("*")
                     else r.workload == self.workload)
            if title and (r.family == self.family if self.family else r.variant == self.variant):
                return r
        return None


@dataclass(frozen=True)
class Part:
    """One measured ratio of a row: ``num / den`` (times; for ``throughput``, rate of num / rate of
    den), and optionally the floor variant: the floor is ``floor / floor_den`` (``den`` unless
    given) on the same scale, the gap is wxdata's time per operation over the floor's."""

    label: str
    num: Pick
    den: Pick
    floor: Pick | None = None
    throughput: bool = False
    floor_den: Pick | None = None


@dataclass(frozen=True)
class AuditedTarget:
    """One row of the targets table: its parts must each be within ``bounds[config]``."""

    label: str
    op: str  # "<=" or ">="
    bounds: dict[str, float]
    parts: tuple[Part, ...]
    never_slower: bool = False


def _main(workload: str, num: str, den: str = "raw", floor: bool = False,
          label: str = "") -> Part:
    return Part(label, Pick("main", workload, num), Pick("main", workload, den),
                Pick("main", workload, "floor") if floor else None)


_SCHOOLS = "schools by id (reference data)"
_PHI_CACHE = "PHI student by id, with its audit record"

AUDITED_TARGETS = (
    AuditedTarget("PHI read + its record vs bare fetch", "<=", {"A": 2.0, "B": 2.0},
                  (_main("PHI read with audit (health record)", "wx", floor=True),)),
    AuditedTarget("fetch by id audited vs bare fetch", "<=", {"A": 2.0, "B": 2.0},
                  (_main("fetch by id", "wx", floor=True),)),
    AuditedTarget("page of 20 + total, audited", "<=", {"A": 1.2, "B": 1.2},
                  (_main("page of 20 + total", "wx", floor=True),)),
    AuditedTarget("create + record vs bare insert", "<=", {"A": 1.2, "B": 1.5},
                  (_main("single create", "wx", floor=True),)),
    AuditedTarget("update + record vs bare update", "<=", {"A": 1.2, "B": 1.5},
                  (_main("update by id", "wx", floor=True),)),
    AuditedTarget("bulk create 10k + record vs raw COPY", "<=", {"A": 1.2, "B": 1.2},
                  (_main("bulk create*", "wx"),)),
    AuditedTarget("8-thread school day, audited vs unaudited throughput", ">=",
                  {"A": 0.6, "B": 0.6},
                  (Part("", Pick("mixed", "school day*", "wx"),
                        Pick("mixed", "school day*", "wx_noaudit"), Pick("mixed", "school day*",
                                                                         "floor"),
                        throughput=True, floor_den=Pick("mixed", "school day*", "raw")),)),
    AuditedTarget("fetch by id, audit off", "<=", {"A": 1.10, "B": 1.15},
                  (_main("fetch by id", "wx_noaudit"),)),
    AuditedTarget("create / update, audit off", "<=", {"A": 1.08, "B": 1.15},
                  (_main("single create", "wx_noaudit", label="create"),
                   _main("update by id", "wx_noaudit", label="update"))),
    AuditedTarget("memory-cache hit, audit off, vs `cachetools.cached` over the same call", "<=",
                  {"A": 2.0, "B": 2.0},
                  (Part("", Pick("cache", _SCHOOLS, variant="cached: memory hit"),
                        Pick("cache", _SCHOOLS, variant="cachetools.cached over find_by_id")),)),
    AuditedTarget("Redis-cache hit, audit off, vs hand-written GET + decrypt + decode", "<=",
                  {"A": 1.10, "B": 1.10},
                  (Part("", Pick("cache", _SCHOOLS, variant="cached: redis hit"),
                        Pick("cache", _SCHOOLS,
                             variant="hand-written redis GET + AES-GCM + decode")),)),
    AuditedTarget("cached PHI hit with its record vs the uncached audited read", "<=",
                  {"A": 0.6, "B": 0.6},
                  tuple(Part(label, Pick("cache", _PHI_CACHE, variant=variant),
                             Pick("cache", _PHI_CACHE,
                                  variant="wxdata find_by_id + riding audit record"),
                             Pick("cache", _PHI_CACHE, "floor_insert"))
                        for label, variant in (
                            ("memory", "cached: memory hit + audit INSERT"),
                            ("redis", "cached on redis: find_by_id read, not served from Redis"))),
                  never_slower=True),
)


def _rate(r: Result, throughput: bool) -> float:
    return float(r.extra["throughput_ops_s"]) if throughput else r.median


def _per_op(r: Result, throughput: bool) -> float:
    return 1.0 / float(r.extra["throughput_ops_s"]) if throughput else r.median


def _value(part: Part, results: list[Result], config: str) -> dict[str, Any] | None:
    num, den = part.num.find(results, config), part.den.find(results, config)
    if num is None or den is None:
        return None
    value = _rate(num, part.throughput) / _rate(den, part.throughput)
    out: dict[str, Any] = {"label": part.label, "value": value, "floor": None, "gap": None}
    low = part.floor.find(results, config) if part.floor else None
    low_den = (part.floor_den or part.den).find(results, config)
    if low is not None and low_den is not None:
        out["floor"] = _rate(low, part.throughput) / _rate(low_den, part.throughput)
        out["gap"] = _per_op(num, part.throughput) / _per_op(low, part.throughput)
    return out


def _within(value: float, op: str, bound: float) -> bool:
    return value <= bound if op == "<=" else value >= bound


def _verdict(t: AuditedTarget, parts: list[dict[str, Any]], bound: float) -> str:
    """met; floor (the floor itself misses the bound and wxdata is within 1.15x of it); MISSED."""
    verdict = "met"
    for p in parts:
        if t.never_slower and p["value"] > 1.0:
            return "MISSED"
        if _within(p["value"], t.op, bound):
            continue
        if p["floor"] is not None and not _within(p["floor"], t.op, bound) \
                and p["gap"] <= FLOOR_GAP:
            verdict = "floor"
            continue
        return "MISSED"
    return verdict


def audited_rows(results: list[Result]) -> list[dict[str, Any]]:
    """Each audited-performance target: per configuration its ratios, floor, gap and verdict."""
    configs = sorted({r.config for r in results if r.section in ("main", "mixed", "cache")})
    out = []
    for t in AUDITED_TARGETS:
        row: dict[str, Any] = {"target": t.label, "op": t.op, "bounds": t.bounds}
        for c in configs:
            parts = [v for v in (_value(p, results, c) for p in t.parts) if v is not None]
            if not parts:
                continue
            bound = t.bounds[c]
            row[c] = {"parts": parts, "bound": bound, "verdict": _verdict(t, parts, bound)}
        out.append(row)
    return out


def _cell(row: dict[str, Any], config: str, key: str, fmt: str) -> str:
    got = row.get(config)
    if got is None or all(p[key] is None for p in got["parts"]):
        return "—"
    cells = []
    for p in got["parts"]:
        v = p[key]
        text = "—" if v is None else fmt.format(v)
        cells.append(f"{p['label']} {text}".strip() if len(got["parts"]) > 1 else text)
    return ", ".join(cells)


def audited_targets(results: list[Result]) -> str:
    """The audited-performance targets table: A and B values, the floor, the gap, the verdict."""
    rows = audited_rows(results)
    if not any(len(r) > 3 for r in rows):
        return ""
    lines = ["| workload | target A / B | A | B | floor A / B | gap to floor A / B | verdict A / B |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        op = "≥" if row["op"] == ">=" else "≤"
        bounds = row["bounds"]
        target = (f"{op} {bounds['A']:.2f}x" if bounds["A"] == bounds["B"]
                  else f"{op} {bounds['A']:.2f}x / {op} {bounds['B']:.2f}x")
        floors = [_cell(row, c, "floor", "{:.2f}x") for c in ("A", "B")]
        gaps = [_cell(row, c, "gap", "{:.2f}x") for c in ("A", "B")]
        verdicts = [row[c]["verdict"] if c in row else "—" for c in ("A", "B")]
        lines.append(f"| {row['target']} | {target} | {_cell(row, 'A', 'value', '{:.2f}x')} | "
                     f"{_cell(row, 'B', 'value', '{:.2f}x')} | "
                     f"{_slash(floors) if any(f != '—' for f in floors) else '—'} | "
                     f"{_slash(gaps) if any(g != '—' for g in gaps) else '—'} | "
                     f"{_slash(verdicts)} |")
    return "\n".join(lines + _relaxed_lines(results))


def _relaxed_lines(results: list[Result]) -> list[str]:
    """The opt-in ``AUDIT_READ_COMMIT=async`` reads beside the durable ones (never a verdict)."""
    rows = []
    for workload in ("PHI read with audit (health record)", "fetch by id"):
        cells = []
        for c in ("A", "B"):
            got = {f: Pick("main", workload, f).find(results, c)
                   for f in ("raw", "floor", "wx", "wx_relaxed")}
            raw, relaxed = got["raw"], got["wx_relaxed"]
            if raw is None or relaxed is None:
                cells.append("—")
                continue
            text = f"{relaxed.median / raw.median:.2f}x"
            if got["wx"] is not None:
                text += f" (durable {got['wx'].median / raw.median:.2f}x)"
            cells.append(text)
        if any(cell != "—" for cell in cells):
            rows.append(f"| {workload}: wxdata audited, AUDIT_READ_COMMIT=async, vs bare fetch "
                        f"| {cells[0]} | {cells[1]} |")
    if not rows:
        return []
    return ["", "Opt-in, not durable and not counted above: read records committed with "
            "`synchronous_commit = off` (`AUDIT_READ_COMMIT=async`; a server crash can lose the "
            "records of the last few hundred milliseconds of reads, see docs/audit.md).", "",
            "| workload | A | B |", "|---|---|---|", *rows]


def audit_log(results: list[Result]) -> str:
    """Records per second the audit log takes with N writers, and WAL bytes per audited read."""
    lines: list[str] = []
    rate = [r for r in results if r.section == "audit_rate"]
    if rate:
        configs = _configs(rate)
        lines += [f"| {rate[0].workload}: median of repetitions (min-max) | "
                  + " | ".join(configs) + " |", "|---" * (1 + len(configs)) + "|"]
        for variant in _ordered(r.variant for r in rate):
            cells = []
            for c in configs:
                f = next((r for r in rate if r.variant == variant and r.config == c), None)
                cells.append("—" if f is None else f"{f.extra['records_per_s']:,.0f} "
                             f"({1e6 / f.hi:,.0f}-{1e6 / f.lo:,.0f})")
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    wal = [r for r in results if r.section == "wal"]
    if wal:
        base = next((r for r in wal if r.baseline), None)
        lines += ["| WAL per audited PHI read (pg_stat_wal delta / reads) | bytes, median | "
                  "bytes, min | records | full-page images | bytes vs current schema |",
                  "|---|---|---|---|---|---|"]
        for r in wal:
            ratio = (f"{r.median / base.median:.2f}x"
                     if base and base.median and r.extra.get("kind") in ("schema", "hit")
                     else "—")
            lines.append(f"| {r.variant} | {r.median:,.0f} | {r.lo:,.0f} | "
                         f"{r.extra.get('wal_records', 0):.1f} | {r.extra.get('wal_fpi', 0):.2f} | "
                         f"{ratio} |")
        lines += ["", "`pg_stat_wal` counts the whole server: the \"no read\" row is what other "
                  "sessions wrote in as much time, per read; the figures hold only when it is "
                  "near zero (an idle server)."]
    return "\n".join(lines).rstrip()


# --- school day and scaling --------------------------------------------------------------------


def school_day(results: list[Result]) -> str:
    """Throughput and latency percentiles of the mixed workload, per configuration."""
    rows = [r for r in results if r.section == "mixed"]
    if not rows:
        return ""
    configs = _configs(rows)
    lines = ["| client | " + " | ".join(
        f"{c}: ops/s | {c}: p50 / p95 / p99 | {c}: cost vs raw" for c in configs) + " |",
        "|---" * (1 + 3 * len(configs)) + "|"]
    for variant in _ordered(r.variant for r in rows):
        cells = []
        for c in configs:
            f = next((r for r in rows if r.variant == variant and r.config == c), None)
            if f is None:
                cells += ["—", "—", "—"]
                continue
            e = f.extra
            cells += [f"{e['throughput_ops_s']:.0f}",
                      f"{fmt_us(e['p50_us'])} / {fmt_us(e['p95_us'])} / {fmt_us(e['p99_us'])}",
                      _ratio(f)]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling(results: list[Result]) -> str:
    """Median µs per operation at each scale ("A / B"), and how it grows from the smallest scale."""
    rows = [r for r in results if r.section == "scaling"]
    if not rows:
        return ""
    scales = sorted({r.scale for r in rows if r.scale})
    configs = _configs(rows)
    lines = ["| operation | variant | " + " | ".join(f"{s:,} students" for s in scales)
             + " | growth, smallest → largest scale measured |", "|---" * (3 + len(scales)) + "|"]
    for key in _ordered(f"{r.workload}\x00{r.variant}" for r in rows):
        wl, variant = key.split("\x00")
        cells = []
        firsts: dict[str, float] = {}
        lasts: dict[str, float] = {}
        counts: dict[str, int] = {}
        for s in scales:
            parts = []
            for c in configs:
                f = next((r for r in rows if r.workload == wl and r.variant == variant
                          and r.scale == s and r.config == c), None)
                parts.append("—" if f is None else fmt_us(f.median))
                if f is not None:
                    firsts.setdefault(c, f.median)
                    lasts[c] = f.median
                    counts[c] = counts.get(c, 0) + 1
            cells.append(_slash(parts))
        growth = _slash([f"{lasts[c] / firsts[c]:.1f}x" if counts.get(c, 0) > 1 else "—"
                         for c in configs])
        lines.append(f"| {wl} | {variant} | " + " | ".join(cells) + f" | {growth} |")
    return "\n".join(lines)


def extras(results: list[Result]) -> str:
    """Results contributed by the optional modules (each in its own section)."""
    sections = _ordered(r.section for r in results
                        if r.section not in ("main", "mixed", "scaling", "audit_rate", "wal"))
    return "\n\n".join(f"### {s.removeprefix('extra:')}\n\n" + details(results, s) for s in sections)


def markdown(rep: Report) -> str:
    """The whole report as Markdown."""
    meta = rep.meta
    configs = ", ".join(meta.get("configs", []))
    parts = [
        f"# wxdata benchmarks — {str(meta.get('started', ''))[:10]}",
        "",
        f"{meta.get('scale', 0):,} students, {meta.get('scale', 0) * meta.get('records_per_student', 0):,}"
        f" health records; PostgreSQL {meta.get('postgresql')}, Python {meta.get('python')}, "
        f"psycopg {meta.get('psycopg')}, SQLAlchemy {meta.get('sqlalchemy')}; {meta.get('cpus')} CPUs; "
        f"configurations {configs}; {meta.get('reps')} interleaved repetitions"
        f"{' (QUICK smoke run: figures are not meaningful)' if meta.get('quick') else ''}; "
        f"git {meta.get('git_commit')}. Load average at start {meta.get('loadavg_start')}, "
        f"at end {meta.get('loadavg_end')}; {meta.get('seconds', '?')} s in all.",
        "",
        "**A** realistic: TCP loopback, durable commits, PostgreSQL (and Redis) on one core and the "
        "client on another (every round trip crosses cores, as it crosses a network). **B** CPU "
        "cost: client, PostgreSQL (and Redis) pinned to one core, `synchronous_commit=off`. Cells "
        "are the median ratio to raw psycopg (prepared statements) in the same run, written "
        "\"A / B\"; the raw column gives its median time per operation.",
        "",
        "## Summary (ratio to raw psycopg, A / B)",
        "",
        summary(rep.results),
        "",
        "## Audited-performance targets (durable commits; ratios of one interleaved run)",
        "",
        audited_targets(rep.results),
        "",
        "Verdict: **met** within the target; **floor** when the target is beyond the measured "
        "floor (raw psycopg doing the same operation with the leanest durable record riding in "
        f"the same statement misses it too) and wxdata is within {FLOOR_GAP:.2f}x of that floor; "
        "otherwise **MISSED**. A cached PHI hit slower than the uncached read is MISSED.",
        "",
        "## Audit log: records per second and WAL per read",
        "",
        audit_log(rep.results),
        "",
        "## Layer targets (wxdata vs raw psycopg and SQLAlchemy)",
        "",
        targets(rep.results),
        "",
        "## School day (80% reads / 20% writes, pooled connections)",
        "",
        school_day(rep.results),
        "",
        "## Scaling (median per operation, A / B)",
        "",
        scaling(rep.results),
        "",
        "## Details (median over repetitions of the mean per operation, min-max, ratio)",
        "",
        details(rep.results, "main"),
        "",
        details(rep.results, "scaling"),
        "",
    ]
    more = extras(rep.results)
    if more or rep.extra_markdown:
        parts += ["## Optional modules (benchmarks/bench_*.py)", "", more, "", *rep.extra_markdown]
    if rep.notes:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in rep.notes]
    return "\n".join(p for p in parts if p is not None).rstrip() + "\n"


# --- files -------------------------------------------------------------------------------------


def render_chart(results: list[Result], path: Path) -> Path | None:
    """PNG: time relative to raw psycopg per workload and client, one panel per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    main = [r for r in results if r.section == "main"]
    configs = _configs(main)
    if not configs:
        return None
    workloads = _ordered(r.workload for r in main)
    fams = [f for f in FAMILIES if f[0] != "raw"]
    fig, axes = plt.subplots(1, len(configs), figsize=(8.5 * len(configs), 1.2 + 0.9 * len(workloads)),
                             squeeze=False)
    colors = ["#9e9e9e", "#2ca02c", "#1f77b4", "#9ecae1", "#ff7f0e", "#d62728"]
    height = 0.8 / len(fams)
    for ax, c in zip(axes[0], configs, strict=False):
        top = 1.0
        for i, (family, label) in enumerate(fams):
            ys, xs = [], []
            for j, wl in enumerate(workloads):
                f = _find(main, "main", wl, family, c)
                if f is not None and f.ratio:
                    ys.append(j + (i - (len(fams) - 1) / 2) * height)
                    xs.append(f.ratio)
            if not ys:  # a family this run did not measure (e.g. --targets): no legend entry
                continue
            ax.barh(ys, xs, height=height, label=label, color=colors[i % len(colors)])
            for y, x in zip(ys, xs, strict=True):
                ax.text(x * 1.02, y, f"{x:.2f}", va="center", fontsize=6)
                top = max(top, x)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on narrow ranges
        ax.set_xlim(right=top * 1.6)
        ax.set_yticks(range(len(workloads)))
        ax.set_yticklabels(workloads, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("time relative to raw psycopg, same run (log scale; 1.0 = raw)")
        title = "A: realistic (loopback, client and server on separate cores, durable)" if c == "A" else \
            "B: CPU cost (one core, synchronous_commit=off)"
        ax.set_title(title)
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_scaling(results: list[Result], path: Path) -> Path | None:
    """PNG: µs per page against page depth, offset + total vs keyset, one line per scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if r.section == "scaling" and r.workload.split()[0] in ("offset", "keyset")]
    if not rows:
        return None
    configs = _configs(rows)
    scales = sorted({r.scale or 0 for r in rows})
    series = (("offset", "wx", "wxdata offset page + total", "#1f77b4", "-"),
              ("offset", "raw_alt", "raw offset page only", "#1f77b4", ":"),
              ("keyset", "wx", "wxdata find_after (keyset)", "#d62728", "-"),
              ("keyset", "raw", "raw row-value keyset", "#d62728", ":"))
    fig, axes = plt.subplots(1, len(configs), figsize=(7.5 * len(configs), 5.5), squeeze=False)
    markers = "osD^v"
    for ax, c in zip(axes[0], configs, strict=False):
        for kind, family, label, color, style in series:
            for k, scale in enumerate(scales):
                pts = []
                for r in rows:
                    if (r.config == c and r.scale == scale and r.family == family
                            and r.workload.startswith(kind)):
                        pts.append((int(r.workload.split("page")[1].split()[0 if kind == "offset" else 2]),
                                    r.median))
                if not pts:
                    continue
                pts.sort()
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linestyle=style,
                        marker=markers[k % len(markers)], alpha=0.5 + 0.5 * (k + 1) / len(scales),
                        label=f"{label}, {scale:,} students")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("page number (limit 20)")
        ax.set_ylabel("µs per page (median)")
        ax.set_title(f"Deep pages, configuration {c}")
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write(rep: Report, directory: Path, *, chart: bool = True, day: str) -> list[Path]:
    """Write ``<day>.md``, ``<day>.json`` and ``<day>.png`` (``-quick`` suffix for smoke runs)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = day + ("-targets" if rep.meta.get("targets") else "") + (
        "-quick" if rep.meta.get("quick") else "")
    md = directory / f"{stem}.md"
    md.write_text(rep.markdown, encoding="utf-8")
    js = directory / f"{stem}.json"
    payload = {"meta": rep.meta, "notes": rep.notes, "targets": target_rows(rep.results),
               "audited_targets": audited_rows(rep.results),
               "results": [r.to_json() for r in rep.results]}
    js.write_text(json.dumps(_clean(payload), indent=1, default=str), encoding="utf-8")
    files = [md, js]
    if chart:
        for png in (render_chart(rep.results, directory / f"{stem}.png"),
                    render_scaling(rep.results, directory / f"{stem}-scaling.png")):
            if png is not None:
                files.append(png)
    return files
