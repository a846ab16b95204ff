"""The report's rows for section 9 (bench/quotas.py), with the issue 14 targets."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from bench.table import Row, Target, num

SECTION = "9 quotas"


def rows(quotas: dict[str, Any]) -> Iterator[tuple[Row, Target | None]]:
    plan, found = quotas["plan"], quotas["features"]
    rpm = plan["rpm"]
    state = "quotas on" if found["quotas"] else "no quotas on this branch"
    for config, run in quotas["configs"].items():
        label = f"{config} ({' + '.join(map(str, run['processes']))} processes), {state}"
        busy, idle = run["busy"], run["idle"]
        calls = busy["calls"]
        yield (
            Row(
                SECTION,
                f"{label}: calls refused by the provider (429), {busy['photos']} photos at "
                f"{rpm} RPM ({calls['accepted']} accepted)",
                f"{calls['rejected']} ({num(calls['rejected_pct'])} %)",
            ),
            Target(f"quotas {config} refused calls", calls["rejected_pct"], 1, True, " %"),
        )
        # Of the limit (RPM) once the provider's full bucket at the start is spent, i.e. after
        # the first minute; a run too short for that is measured against the most the provider
        # accepts in its span (the full bucket + the refill).
        steady, vs_max = calls["utilisation_steady_pct"], calls["utilisation_vs_max_pct"]
        yield (
            Row(
                SECTION,
                f"{label}: provider utilisation while work was queued "
                f"({num(calls['queued_span_s'])} s): accepted calls a minute after the first "
                f"minute ÷ {rpm} RPM; over the whole span {num(vs_max)} % of the most the "
                "provider accepts (its full bucket + its refill)",
                f"{num(vs_max if steady is None else steady)} %"
                + (" (whole span: too short)" if steady is None else ""),
            ),
            Target(
                f"quotas {config} utilisation", vs_max if steady is None else steady, 90, False, "%"
            ),
        )
        done = busy["statuses"].get("DONE", 0)
        yield (
            Row(
                SECTION,
                f"{label}: photos DONE ({busy['statuses']}, "
                f"{'finished' if busy['finished'] else 'stopped waiting'} after "
                f"{num(busy['wall_s'])} s)",
                f"{done} of {busy['photos']}",
            ),
            Target(f"quotas {config} photos DONE", 100 * done / busy["photos"], 100, False, " %"),
        )
        small, alone = busy["e2e_small_s"], idle["e2e_s"]
        ratio = small["p95"] / alone["p95"] if small["p95"] and alone["p95"] else None
        if small["n"] < plan["small_projects"] * plan["small"]:
            ratio = math.inf  # a photo that never got DONE took longer than any that did
        yield (
            Row(
                SECTION,
                f"{label}: small projects' photos, enqueue → DONE P50 / P95 "
                f"({small['n']} DONE of {plan['small_projects'] * plan['small']}) beside "
                f"{plan['big']} photos of one project",
                f"{num(small['p50'])} / {num(small['p95'])} s",
                f"{num(alone['p50'])} / {num(alone['p95'])} s (idle)",
                "—" if ratio is None or math.isinf(ratio) else f"{ratio:.1f}×",
            ),
            Target(f"quotas {config} small P95 vs idle", ratio, 2, True, "×"),
        )
        priority = run["priority"]
        if "skipped" in priority:
            skipped = Row(SECTION, f"{label}: high priority", "skipped: " + priority["skipped"])
            yield skipped, None
            continue
        start = priority["to_provider_call_s"]
        yield (
            Row(
                SECTION,
                f"{label}: {priority['high']} high-priority photos behind {priority['behind']} "
                f"normal ones, enqueue → provider call P50 / max (seen PROCESSING: P50 "
                f"{num(priority['to_processing_s']['p50'])} s)",
                f"{num(start['p50'])} / {num(start.get('max'))} s",
            ),
            Target(f"quotas {config} high priority start", start.get("max"), 5, True, " s"),
        )
