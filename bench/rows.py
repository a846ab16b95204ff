"""Which rows of the report each section's results make: our figure, its floor from the same
run, the ratio, and the issue's target where there is one."""

from __future__ import annotations

from typing import Any

from bench.quota_rows import rows as quota_rows
from bench.table import Row, Target, cpu, num, pct, ratio


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
        for name in (
            "floors",
            "api",
            "worker",
            "scaling",
            "inventory",
            "preflight",
            "dashboard",
            "webhooks",
            "quotas",
        ):
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
                Row("0 floors", label, f"P50 / P95 / P99 {pct(stats, 'p50', 'p95', 'p99')} ms")
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
                        f"{row['rps']:,.0f} req/s, P50 {num(row['p50_ms'], 3)} ms",
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
                    f"{cpu(ours)}, ping {cpu(ping)})"
                    + (f", {errors} failed or unanswered after 5 s" if errors else ""),
                    f"{pct(lat, 'p50', 'p95', 'p99')} ms",
                    f"{num(floors['p50'])} / {num(floors['p95'])} / {num(floors['p99'])} ms",
                    " / ".join(ratio(lat.get(n), floors[n]) for n in ("p50", "p95", "p99")),
                )
                target = None
                if rate == "200":
                    target = Target(f"{endpoint} P95 at 200 req/s", lat["p95"], 25, True, " ms")
                self.add(row, target)
            saturated, ping = api["saturation"][endpoint], api["saturation"]["ping"]
            row = Row(
                labels[endpoint],
                f"max throughput ({saturated['concurrency']} connections, closed loop); "
                f"P50 / P95 / P99 {pct(saturated['latency_ms'], 'p50', 'p95', 'p99')} ms; "
                f"CPU/request {cpu(saturated)}",
                f"{saturated['throughput']:,.0f} req/s",
                f"{ping['throughput']:,.0f} req/s (ping)",
                ratio(saturated["throughput"], ping["throughput"]),
            )
            target = Target(
                f"{endpoint} at saturation", saturated["throughput"], 300, False, " req/s"
            )
            self.add(row, target)
        upload = api["upload"]
        mb = upload["bytes"] / 1e6
        one, four = upload["c1"], upload["c4"]
        self.add(
            Row(
                "3 upload",
                f"{mb:.1f} MB 12 MP JPEG, one at a time: P50 / P95",
                f"{pct(one['upload']['latency_ms'], 'p50', 'p95')} ms",
                f"{pct(one['ping']['latency_ms'], 'p50', 'p95')} ms (ping, same body)",
                ratio(one["upload"]["latency_ms"]["p50"], one["ping"]["latency_ms"]["p50"]),
            )
        )
        heic = upload.get("heic")
        if heic:
            one_heic = heic["c1"]
            self.add(
                Row(
                    "3 upload",
                    f"{heic['bytes'] / 1e6:.1f} MB 12 MP HEIC, one at a time: P50 / P95",
                    f"{pct(one_heic['upload']['latency_ms'], 'p50', 'p95')} ms",
                    f"{pct(one_heic['ping']['latency_ms'], 'p50', 'p95')} ms (ping, same body)",
                    ratio(
                        one_heic["upload"]["latency_ms"]["p50"],
                        one_heic["ping"]["latency_ms"]["p50"],
                    ),
                ),
                Target(
                    "HEIC upload P95", one_heic["upload"]["latency_ms"]["p95"], 500, True, " ms"
                ),
            )
        self.add(
            Row(
                "3 upload",
                "throughput, 4 at a time",
                f"{four['upload']['throughput']:.1f} uploads/s "
                f"({four['upload']['throughput'] * mb:.0f} MB/s)",
                f"{four['ping']['throughput']:.1f} req/s (ping, same body)",
                ratio(four["upload"]["throughput"], four["ping"]["throughput"]),
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
                f"{num(throughput_floor)} photos/s (2 cores ÷ floor per photo)",
                ratio(http["photos_per_s"], throughput_floor),
            )
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
                    f"{num(throughput_floor)} photos/s",
                    ratio(local["photos_per_s"], throughput_floor),
                )
            )
        serial = worker["serial"]
        breakdown = ", ".join(f"{k} {v}" for k, v in serial["breakdown_ms_per_photo"].items())
        self.add(
            Row(
                "4 worker",
                "per-photo time excluding the provider, P50 (one photo at a time, in-process; "
                f"ms/photo: {breakdown})",
                f"{num(serial['ours_ms']['p50'])} ms",
                f"{num(per_photo_floor)} ms (4 UPDATE + 2 RPUSH)",
                ratio(serial["ours_ms"]["p50"], per_photo_floor),
            ),
            Target("worker overhead per photo", serial["ours_ms"]["p50"], 10, True, " ms"),
        )
        queries = serial["queries_per_photo"]
        self.add(
            Row(
                "4 worker",
                "SQL statements per photo (counted: execute_wrapper; + "
                f"{num(serial['pool_checkouts_per_photo']['mean'])} pool checkouts)",
                f"{num(queries['mean'])}",
                "4 (claim, DONE, 2 AiMetric rows)",
                ratio(queries["mean"], 4),
            ),
            Target("queries per photo", queries["mean"], 12, True, ""),
        )
        flows = worker.get("flows")
        if flows:
            two, one = flows["two_calls"], flows["one_call"]
            for name, flow in (("two calls (room, then items)", two), ("one call", one)):
                self.add(
                    Row(
                        "4 worker",
                        f"provider cost per photo without a room type, {name}: calls, input / "
                        f"output tokens, bytes sent, dollars ({flow['model']}, "
                        f"{flow['photos']} photos, tokens as the fake server estimates them)",
                        f"{num(flow['calls'])} calls, {flow['tokens_in']:,} / "
                        f"{flow['tokens_out']:,} tokens, {flow['bytes_sent']:,} B, "
                        f"${flow['cost_usd']:.5f}",
                        "1 call (one answer per photo)",
                        ratio(flow["calls"], 1),
                    ),
                    Target(f"calls per photo, {name}", flow["calls"], 1, True, "")
                    if flow is one
                    else None,
                )

    def _scaling(self, scaling: dict[str, Any]) -> None:
        for model, configs in scaling.items():
            for config, run in configs.items():
                errors = run["connection_errors"]
                not_done = run["photos"] - run["statuses"].get("DONE", 0)
                # What users feel is up to 2 × 32 threads; larger configurations are shown only.
                slots_ok = run["slots"] <= 64
                self.add(
                    Row(
                        "5 scaling",
                        f"{model}, {config} ({run['slots']} slots), burst of {run['photos']}: "
                        f"throughput, E2E P50 / P95 {num(run['e2e_ms']['p50'] / 1000)} / "
                        f"{num(run['e2e_ms']['p95'] / 1000)} s, {errors} connection errors"
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
                    )
                    if slots_ok
                    else None,
                )

    # -- 6–9 -------------------------------------------------------------------------------

    def _quotas(self, quotas: dict[str, Any]) -> None:
        for row, target in quota_rows(quotas):
            self.add(row, target)

    def _inventory(self, inventory: dict[str, Any]) -> None:
        # Issue 12: a 10,000-photo project (200 rooms, 20 lines each) syncs in 500 ms.
        limits = {"10000": 500.0}
        for size, run in inventory["sizes"].items():
            sync, floor = run["sync_ms"], run["floor_group_by_ms"]
            target = None
            if size in limits:
                target = Target(
                    f"inventory sync at {size} photos", sync["p50"], limits[size], True, " ms"
                )
            shape = f"{run['rooms']:,} rooms, {run['lines']:,} lines" if "rooms" in run else ""
            self.add(
                Row(
                    "6 inventory",
                    f"sync of {int(size):,} DONE photos ({shape}): P50 (P95)",
                    f"{num(sync['p50'])} ({num(sync['p95'])}) ms",
                    f"{num(floor['p50'])} ms (the item lines' GROUP BY alone)",
                    ratio(sync["p50"], floor["p50"]),
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
                f"{num(preflight['preflight_ms']['p50'])} ms",
                f"{num(preflight['floor_draft_decode_ms']['p50'])} ms (reduced-scale decode)",
                ratio(preflight["preflight_ms"]["p50"], preflight["floor_draft_decode_ms"]["p50"]),
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
                    f"{num(run['build_ms']['p50'])} ms",
                    f"{num(run['floor_one_pass_ms']['p50'])} ms (one pass: count, sum)",
                    ratio(run["build_ms"]["p50"], run["floor_one_pass_ms"]["p50"]),
                )
            )
        for window, run in dashboard["page"].items():
            build = dashboard["windows"].get(window, {}).get("build_ms", {}).get("p50")
            self.add(
                Row(
                    "8 dashboard",
                    f"admin page through gunicorn, {window} window: P50",
                    f"{num(run['page_ms']['p50'])} ms",
                    f"{num(build)} ms (its queries)",
                    ratio(run["page_ms"]["p50"], build),
                ),
                Target(f"dashboard page {window}", run["page_ms"]["p50"], 1000, True, " ms"),
            )

    # -- 9 ---------------------------------------------------------------------------------

    def _webhooks(self, webhooks: dict[str, Any]) -> None:
        latency = webhooks["latency"]
        done, outbox = latency["from_done_ms"], latency["from_outbox_row_ms"]
        lag = latency["finisher"]["start_lag_ms"]
        self.add(
            Row(
                "9 webhooks",
                f"DONE → receiver's 2xx at {latency['rate']} photos/s ({latency['photos']} photos, "
                f"worker {latency['worker']}, one endpoint; from the photo's processed_at; from "
                f"the outbox row's created_at P50 / P95 {pct(outbox, 'p50', 'p95')} ms; "
                f"{latency['non_2xx']} non-2xx; photos finished at "
                f"{num(latency['finisher']['achieved_rate'])}/s, start lag P95 "
                f"{num(lag['p95'])} ms; CPU "
                "ms/delivery: "
                + ", ".join(f"{k} {v}" for k, v in latency["cpu_ms_per_delivery"].items())
                + ")",
                f"P50 / P95 / P99 {pct(done, 'p50', 'p95', 'p99')} ms",
            )
        )
        throughput = webhooks["throughput"]
        floor = throughput["floor_http"]
        self.add(
            Row(
                "9 webhooks",
                f"deliveries/s, one worker process ({throughput['worker']}), a backlog of "
                f"{throughput['deliveries']:,}, receiver answering 200 at once (CPU ms/delivery: "
                + ", ".join(f"{k} {v}" for k, v in throughput["cpu_ms_per_delivery"].items())
                + ")",
                f"{num(throughput['per_s'])} deliveries/s",
                f"{num(floor['per_s'])} POSTs/s (http.client, {floor['threads']} threads, "
                "same receiver)",
                ratio(throughput["per_s"], floor["per_s"]),
            ),
            # 50 photos/s with one endpoint each is 50 deliveries/s.
            Target("webhook deliveries/s, one worker", throughput["per_s"], 50, False, "/s"),
        )
        burst = webhooks["burst"]
        self.add(
            Row(
                "9 webhooks",
                f"burst of {burst['events']:,} events, receiver answering 500 for its first "
                f"{burst['failing_s']:.0f} s (retry schedule {burst['retry_schedule_s']} s, "
                f"±10 %; worker {burst['worker']}): delivered; {burst['requests']:,} requests, "
                f"{burst['answered_500']:,} answered 500, {burst['bad_signatures']} bad "
                f"signatures; duplicates with the same webhook-id {burst['duplicates_same_id']}",
                f"{burst['events_delivered']:,} of {burst['events']:,}",
            ),
            Target(
                "burst: events delivered",
                100 * burst["events_delivered"] / burst["events"],
                100,
                False,
                " %",
            ),
        )
        self.add(
            Row(
                "9 webhooks",
                "burst: events that reached the receiver under two different webhook-ids",
                f"{burst['events_with_two_ids']} (max {burst['max_ids_per_event']} id per event)",
            ),
            Target(
                "burst: events with one webhook-id",
                100 * (1 - burst["events_with_two_ids"] / burst["events"]),
                100,
                False,
                " %",
            ),
        )
        self.add(
            Row(
                "9 webhooks",
                "burst: recovery → last delivery (recovery → first 2xx "
                f"{num(burst['recovery_to_first_2xx_s'])} s: the retry schedule's wait; first → "
                f"last 2xx {num(burst['first_to_last_2xx_s'])} s)",
                f"{num(burst['recovery_to_last_2xx_s'])} s",
            )
        )
