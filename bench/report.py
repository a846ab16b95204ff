"""The report: one JSON document, a Markdown table, and the table put into docs/benchmarks.md.

Every row shows our figure, its floor measured in the same run, the ratio, and the issue's target
with met / missed and by how much.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.infra import ROOT

DOCS = ROOT / "docs" / "benchmarks.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"


@dataclass
class Row:
    section: str
    figure: str
    ours: str
    floor: str = "—"
    ratio: str = "—"
    target: str = "—"
    verdict: str = "—"


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    at_most: bool  # True: value <= limit; False: value >= limit
    unit: str

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def describe(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {_num(self.limit)}{self.unit}"

    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        share = self.value / self.limit if self.limit else float("inf")
        if self.met:
            if self.at_most:
                return f"**met** ({share:.0%} of the limit)"
            return f"**met** ({share:.2f}× the target)"
        if self.at_most:
            return f"**missed** by {share - 1:.0%} ({share:.2f}× the limit)"
        return f"**missed** by {1 - share:.0%} ({share:.2f}× the target)"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "comparison": "<=" if self.at_most else ">=",
            "unit": self.unit.strip(),
            "met": self.met,
        }


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _ratio(ours: float | None, floor: float | None) -> str:
    if ours is None or not floor:
        return "—"
    return f"{ours / floor:.1f}×"


def _cpu(run: dict[str, Any]) -> str:
    """CPU ms per request: web processes + PostgreSQL + Redis."""
    cpu = run.get("cpu_ms_per_request")
    if not cpu:
        return "—"
    return f"{cpu['server']:.1f}+{cpu['postgres']:.1f}+{cpu['redis']:.1f} ms"


def _pct(sub: dict[str, Any], *names: str) -> str:
    return " / ".join(_num(sub.get(name)) for name in names)


class Builder:
    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.rows: list[Row] = []
        self.targets: list[Target] = []
        floors = results.get("floors") or {}
        self.sql_update = (floors.get("sql_update_pk_ms") or {}).get("p50")
        self.sql_select = (floors.get("sql_select_pk_ms") or {}).get("p50")
        self.redis_push = (floors.get("redis_rpush_ms") or {}).get("p50")

    def add(self, row: Row, target: Target | None = None) -> None:
        if target is not None:
            row.target = target.describe()
            row.verdict = target.verdict()
            self.targets.append(target)
        self.rows.append(row)

    def build(self) -> None:
        for name in ("floors", "api", "worker", "scaling", "inventory", "preflight", "dashboard"):
            section = self.results.get(name)
            if section is None:
                continue
            if "error" in section:
                self.rows.append(Row(name, "failed", section["error"].splitlines()[-1][:120]))
                continue
            getattr(self, f"_{name}")(section)

    # -- floors ----------------------------------------------------------------------------

    def _floors(self, floors: dict[str, Any]) -> None:
        for key, label in (
            ("sql_update_pk_ms", "PostgreSQL UPDATE by primary key (psycopg, one at a time)"),
            ("sql_select_pk_ms", "PostgreSQL SELECT by primary key"),
            ("redis_rpush_ms", "Redis RPUSH of 200 bytes (redis-py, one at a time)"),
        ):
            stats = floors[key]
            self.rows.append(
                Row("0 floors", label, f"P50 / P95 / P99 {_pct(stats, 'p50', 'p95', 'p99')} ms")
            )
        pgbench = floors.get("pgbench")
        if pgbench and "tps" in pgbench:
            self.rows.append(
                Row(
                    "0 floors",
                    "pgbench, 1 client, the same UPDATE",
                    f"{pgbench['latency_avg_ms']:.3f} ms average, {pgbench['tps']:,.0f} TPS",
                )
            )
        bench = floors.get("redis_benchmark") or {}
        for clients, row in bench.items():
            if "rps" in row:
                self.rows.append(
                    Row(
                        "0 floors",
                        f"redis-benchmark RPUSH, {clients[1:]} client(s)",
                        f"{row['rps']:,.0f} req/s, P50 {_num(row['p50_ms'], 3)} ms",
                    )
                )

    # -- 1–3 -------------------------------------------------------------------------------

    def _api_floor(self, ping: dict[str, Any], name: str, endpoint: str) -> float | None:
        value = ping["latency_ms"].get(name)
        if value is None or self.sql_select is None or self.redis_push is None:
            return None
        extra = self.sql_select  # token lookup
        if endpoint == "enqueue":
            extra += (self.sql_update or 0) + self.redis_push
        else:
            extra += self.sql_select
        return float(value) + extra

    def _api(self, api: dict[str, Any]) -> None:
        labels = {"enqueue": "1 enqueue", "poll": "2 polling"}
        for endpoint in ("enqueue", "poll"):
            for rate, runs in api["rates"].items():
                ours, ping = runs[endpoint], runs["ping"]
                lat = ours["latency_ms"]
                floors = {n: self._api_floor(ping, n, endpoint) for n in ("p50", "p95", "p99")}
                errors = ours["requests"] - ours["ok"]
                row = Row(
                    labels[endpoint],
                    f"P50 / P95 / P99 at {rate} req/s (open loop; CPU/request: "
                    f"{_cpu(ours)}, ping {_cpu(ping)})"
                    + (f", {errors} failed or unanswered after 5 s" if errors else ""),
                    f"{_pct(lat, 'p50', 'p95', 'p99')} ms",
                    f"{_num(floors['p50'])} / {_num(floors['p95'])} / {_num(floors['p99'])} ms",
                    " / ".join(_ratio(lat.get(n), floors[n]) for n in ("p50", "p95", "p99")),
                )
                target = None
                if endpoint == "enqueue" and rate == "50":
                    target = Target("enqueue P50 at low load", lat["p50"], 5, True, " ms")
                elif endpoint == "enqueue" and rate == "200":
                    target = Target("enqueue P95 at 200 req/s", lat["p95"], 25, True, " ms")
                elif endpoint == "poll" and rate == "200":
                    target = Target("polling P95 at 200 req/s", lat["p95"], 15, True, " ms")
                self.add(row, target)
            saturated, ping = api["saturation"][endpoint], api["saturation"]["ping"]
            row = Row(
                labels[endpoint],
                f"max throughput ({saturated['concurrency']} connections, closed loop); "
                f"P50 / P95 / P99 {_pct(saturated['latency_ms'], 'p50', 'p95', 'p99')} ms; "
                f"CPU/request {_cpu(saturated)}",
                f"{saturated['throughput']:,.0f} req/s",
                f"{ping['throughput']:,.0f} req/s (ping)",
                _ratio(saturated["throughput"], ping["throughput"]),
            )
            target = None
            if endpoint == "enqueue":
                target = Target(
                    "enqueue at saturation", saturated["throughput"], 500, False, " req/s"
                )
            self.add(row, target)
        upload = api["upload"]
        mb = upload["bytes"] / 1e6
        one, four = upload["c1"], upload["c4"]
        self.add(
            Row(
                "3 upload",
                f"{mb:.1f} MB 12 MP JPEG, one at a time: P50 / P95",
                f"{_pct(one['upload']['latency_ms'], 'p50', 'p95')} ms",
                f"{_pct(one['ping']['latency_ms'], 'p50', 'p95')} ms (ping, same body)",
                _ratio(one["upload"]["latency_ms"]["p50"], one["ping"]["latency_ms"]["p50"]),
            )
        )
        self.add(
            Row(
                "3 upload",
                "throughput, 4 at a time",
                f"{four['upload']['throughput']:.1f} uploads/s "
                f"({four['upload']['throughput'] * mb:.0f} MB/s)",
                f"{four['ping']['throughput']:.1f} req/s (ping, same body)",
                _ratio(four["upload"]["throughput"], four["ping"]["throughput"]),
            )
        )

    # -- 4–5 -------------------------------------------------------------------------------

    def _worker(self, worker: dict[str, Any]) -> None:
        per_photo_floor = None
        if self.sql_update is not None and self.redis_push is not None:
            # claim, DONE, two AiMetric rows; fetch and ack the message
            per_photo_floor = 4 * self.sql_update + 2 * self.redis_push
        http = worker["http_fake"]
        throughput_floor = 2000 / per_photo_floor if per_photo_floor else None
        self.add(
            Row(
                "4 worker",
                f"photos/s, {worker['photos']} photos, provider latency 0 (fake server over "
                f"HTTP, SDK), {http['config']} (CPU ms/photo: "
                + ", ".join(f"{k} {v}" for k, v in http["cpu_ms_per_photo"].items())
                + ")",
                f"{http['photos_per_s']:.0f} photos/s",
                f"{_num(throughput_floor)} photos/s (2 cores ÷ floor per photo)",
                _ratio(http["photos_per_s"], throughput_floor),
            ),
            Target("worker photos/s, provider latency 0", http["photos_per_s"], 250, False, " /s"),
        )
        local = worker.get("inprocess_fake")
        if local:
            self.add(
                Row(
                    "4 worker",
                    f"photos/s, {local['photos']} photos, in-process fake provider "
                    "(no HTTP, no SDK); CPU ms/photo: "
                    + ", ".join(f"{k} {v}" for k, v in local["cpu_ms_per_photo"].items()),
                    f"{local['photos_per_s']:.0f} photos/s",
                    f"{_num(throughput_floor)} photos/s",
                    _ratio(local["photos_per_s"], throughput_floor),
                )
            )
        serial = worker["serial"]
        breakdown = ", ".join(f"{k} {v}" for k, v in serial["breakdown_ms_per_photo"].items())
        self.add(
            Row(
                "4 worker",
                "per-photo time excluding the provider, P50 (one photo at a time, in-process; "
                f"ms/photo: {breakdown})",
                f"{_num(serial['ours_ms']['p50'])} ms",
                f"{_num(per_photo_floor)} ms (4 UPDATE + 2 RPUSH)",
                _ratio(serial["ours_ms"]["p50"], per_photo_floor),
            ),
            Target("worker overhead per photo", serial["ours_ms"]["p50"], 4, True, " ms"),
        )
        queries = serial["queries_per_photo"]
        self.add(
            Row(
                "4 worker",
                "SQL statements per photo (counted: execute_wrapper; + "
                f"{_num(serial['pool_checkouts_per_photo']['mean'])} pool checkouts)",
                f"{_num(queries['mean'])}",
                "4 (claim, DONE, 2 AiMetric rows)",
                _ratio(queries["mean"], 4),
            ),
            Target("queries per photo", queries["mean"], 8, True, ""),
        )

    def _scaling(self, scaling: dict[str, Any]) -> None:
        for model, configs in scaling.items():
            for config, run in configs.items():
                errors = run["connection_errors"]
                not_done = run["photos"] - run["statuses"].get("DONE", 0)
                self.add(
                    Row(
                        "5 scaling",
                        f"{model}, {config} ({run['slots']} slots), burst of {run['photos']}: "
                        f"throughput, E2E P50 / P95 {_num(run['e2e_ms']['p50'] / 1000)} / "
                        f"{_num(run['e2e_ms']['p95'] / 1000)} s, {errors} connection errors"
                        + (f", {not_done} not DONE" if not_done else ""),
                        f"{run['throughput_per_s']:.1f} photos/s",
                        f"{run['ideal_throughput_per_s']:.1f} photos/s (ideal)",
                        f"{run['fraction_of_ideal']:.0%}",
                    ),
                    Target(
                        f"scaling {model} {config}",
                        run["fraction_of_ideal"] * 100 if not errors and not not_done else 0.0,
                        90,
                        False,
                        " % of ideal",
                    ),
                )

    # -- 6–8 -------------------------------------------------------------------------------

    def _inventory(self, inventory: dict[str, Any]) -> None:
        limits = {"100": 10.0, "10000": 50.0}
        for size, run in inventory["sizes"].items():
            sync, floor = run["sync_ms"], run["floor_group_by_ms"]
            target = None
            if size in limits:
                target = Target(
                    f"inventory sync at {size} photos", sync["p50"], limits[size], True, " ms"
                )
            self.add(
                Row(
                    "6 inventory",
                    f"sync of {int(size):,} DONE photos: P50 (P95)",
                    f"{_num(sync['p50'])} ({_num(sync['p95'])}) ms",
                    f"{_num(floor['p50'])} ms (the GROUP BY alone)",
                    _ratio(sync["p50"], floor["p50"]),
                ),
                target,
            )
        growth = inventory["growth"]
        self.add(
            Row(
                "6 inventory",
                "growth: log-log slope between sizes ("
                + ", ".join(f"{k}: {v}" for k, v in growth["loglog_slopes"].items())
                + "; 1.0 = linear)",
                f"max {growth['max_slope']}",
            ),
            Target("inventory growth (max log-log slope)", growth["max_slope"], 1.1, True, ""),
        )

    def _preflight(self, preflight: dict[str, Any]) -> None:
        original, sent = preflight["original"], preflight["sent"]
        self.add(
            Row(
                "7 preflight",
                f"12 MP photo ({original['width']}×{original['height']}, "
                f"{original['bytes'] / 1e6:.1f} MB, EXIF): preflight P50",
                f"{_num(preflight['preflight_ms']['p50'])} ms",
                f"{_num(preflight['floor_draft_decode_ms']['p50'])} ms (reduced-scale decode)",
                _ratio(preflight["preflight_ms"]["p50"], preflight["floor_draft_decode_ms"]["p50"]),
            ),
            Target(
                "preflight of a 12 MP photo", preflight["preflight_ms"]["p50"], 150, True, " ms"
            ),
        )
        self.add(
            Row(
                "7 preflight",
                f"bytes sent: {original['bytes']:,} → {sent['bytes']:,} "
                f"({sent['width']}×{sent['height']}); estimated image tokens "
                f"{original['estimated_tokens']:,} → {sent['estimated_tokens']:,} "
                f"({preflight['tokens_reduction']}× fewer)",
                f"{preflight['bytes_reduction']}× smaller",
            ),
            Target("preflight bytes reduction", preflight["bytes_reduction"], 10, False, "×"),
        )

    def _dashboard(self, dashboard: dict[str, Any]) -> None:
        if "insert_s" in dashboard:
            rollups = ", ".join(
                f"{table.removeprefix('aimetrics_aimetric')} {count:,}"
                for table, count in dashboard.get("rollup_rows", {}).items()
            )
            self.add(
                Row(
                    "8 dashboard",
                    f"INSERT … SELECT of {dashboard['rows']:,} rows (then the rollup job: "
                    f"{dashboard.get('rollup_s', '—')} s; rollup rows: {rollups}; "
                    f"VACUUM ANALYZE {dashboard['vacuum_s']} s)",
                    f"{dashboard['insert_s']} s",
                )
            )
        for window, run in dashboard["windows"].items():
            slowest = max(run["parts_p50_ms"].items(), key=lambda item: item[1] or 0)
            self.add(
                Row(
                    "8 dashboard",
                    f"dashboard_build, {window} window ({run['calls_in_window']:,} of "
                    f"{dashboard['rows']:,} rows): P50; slowest part {slowest[0]} {slowest[1]} ms",
                    f"{_num(run['build_ms']['p50'])} ms",
                    f"{_num(run['floor_one_pass_ms']['p50'])} ms (one pass: count, sum)",
                    _ratio(run["build_ms"]["p50"], run["floor_one_pass_ms"]["p50"]),
                )
            )
        for window, run in dashboard["page"].items():
            build = dashboard["windows"].get(window, {}).get("build_ms", {}).get("p50")
            self.add(
                Row(
                    "8 dashboard",
                    f"admin page through gunicorn, {window} window: P50",
                    f"{_num(run['page_ms']['p50'])} ms",
                    f"{_num(build)} ms (its queries)",
                    _ratio(run["page_ms"]["p50"], build),
                ),
                Target(f"dashboard page {window}", run["page_ms"]["p50"], 1000, True, " ms"),
            )


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"Run of {meta['finished']} on {meta['host']} ({meta['cpus']} CPUs), "
        f"{meta['duration_s']:.0f} s{' (--quick: not comparable)' if meta.get('quick') else ''}. "
        f"Machine load (1-minute load average) before the sections: "
        + ", ".join(f"{load['label']} {load['loadavg'][0]}" for load in meta["loads"])
        + ".",
        "",
        "| section | figure | ours | floor (same run) | ours ÷ floor | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.section, row.figure, row.ours, row.floor, row.ratio, row.target, row.verdict]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], meta: dict[str, Any], out_dir: Path, update_docs: bool) -> Path:
    builder = Builder(results)
    builder.build()
    meta = meta | {"python": platform.python_version()}
    table = markdown(builder.rows, meta)
    document = {
        "meta": meta,
        "targets": [target.as_json() for target in builder.targets],
        "results": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "latest.json"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    (out_dir / "latest.md").write_text(table)
    if update_docs:
        _update_docs(table)
    return json_path


def _update_docs(table: str) -> None:
    """Replace the table between the markers in docs/benchmarks.md (the rest is prose)."""
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text or TABLE_END not in text:
        text += f"\n{TABLE_START}\n{TABLE_END}\n"
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    DOCS.write_text(f"{head}{TABLE_START}\n{table}{TABLE_END}{tail}")
