"""What must hold at the end of every scenario, read in SQL from the scenario's database.

- lost: a photo the API accepted that will never be DONE although nothing says it should fail
  (no row, PENDING with no message owed, or an ERROR that was not expected);
- stuck: still PENDING with a message owed, or PROCESSING, when the scenario's time is up;
- double-DONE: more than one transition into DONE for one photo (from the transition log the
  scenario database keeps with a trigger);
- double-paid: more than one successful provider call of one operation for one photo in one run
  (AiMetric rows: what our books say we paid for).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.harness import Stack


@dataclass
class Outcome:
    scenario: str
    photos: int
    faults: dict[str, int]
    done: int = 0
    errors: int = 0
    expected_errors: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    double_done: list[str] = field(default_factory=list)
    double_paid: list[str] = field(default_factory=list)
    recovery_s: float | None = None
    recovery_bound_s: float | None = None
    recovery_what: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        faults = ", ".join(f"{kind}×{count}" for kind, count in self.faults.items()) or "none"
        if self.recovery_s is None:
            recovery = "n/a"
        else:
            bound = f" (bound {self.recovery_bound_s:.0f} s)" if self.recovery_bound_s else ""
            recovery = f"{self.recovery_s:.1f} s {self.recovery_what}{bound}".replace("  ", " ")
        extra = "".join(f" {key}={value}" for key, value in self.notes.items())
        return (
            f"scenario {self.scenario}: photos={self.photos} faults=[{faults}] done={self.done}"
            f" error={self.errors}/{self.expected_errors} expected lost={len(self.lost)}"
            f" stuck={len(self.stuck)} double-DONE={len(self.double_done)}"
            f" double-paid={len(self.double_paid)} recovery={recovery}{extra}"
        )

    def assert_clean(self) -> None:
        problems = {
            "lost": self.lost,
            "stuck": self.stuck,
            "double-DONE": self.double_done,
            "double-paid": self.double_paid,
        }
        bad = {name: ids[:5] for name, ids in problems.items() if ids}
        assert not bad, f"{self.line()}\nexamples: {bad}"
        if self.recovery_bound_s is not None:
            assert self.recovery_s is not None and self.recovery_s <= self.recovery_bound_s, (
                self.line()
            )


def measure(
    stack: Stack,
    *,
    scenario: str,
    accepted: list[str],
    faults: dict[str, int],
    expected_errors: dict[str, str] | None = None,
) -> Outcome:
    """Read the invariants. `expected_errors`: photo id → the error code it must end with."""
    expected_errors = expected_errors or {}
    rows = stack.sql("SELECT id::text, status, error_code, queued_at IS NOT NULL FROM photos_photo")
    photos = {row[0]: row for row in rows}
    outcome = Outcome(scenario, len(accepted), faults, expected_errors=len(expected_errors))
    for photo_id in accepted:
        row = photos.get(photo_id)
        if row is None:
            outcome.lost.append(photo_id)
            continue
        _, status, error_code, owed = row
        if status == "DONE":
            outcome.done += 1
            if photo_id in expected_errors:
                outcome.lost.append(photo_id)  # it should have failed: a wrong answer kept
        elif status == "ERROR":
            outcome.errors += 1
            if expected_errors.get(photo_id) != error_code:
                outcome.lost.append(photo_id)
        elif status == "PROCESSING" or owed:
            outcome.stuck.append(photo_id)
        else:
            outcome.lost.append(photo_id)  # PENDING and nothing owes it a message
    outcome.double_done = [
        photo_id
        for photo_id, count in done_transitions(stack).items()
        if count > 1 and photo_id in photos
    ]
    outcome.double_paid = sorted(
        {photo_id for (photo_id, _run, _operation), count in paid_calls(stack).items() if count > 1}
    )
    return outcome


def done_transitions(stack: Stack) -> Counter[str]:
    rows = stack.sql(
        "SELECT photo_id::text, count(*) FROM chaos_transition"
        " WHERE new_status = 'DONE' AND old_status IS DISTINCT FROM 'DONE' GROUP BY 1"
    )
    return Counter(dict(rows))


def claims(stack: Stack) -> Counter[str]:
    """How many times each photo was claimed (its lease token set to a new value)."""
    rows = stack.sql(
        "SELECT photo_id::text, count(*) FROM chaos_transition"
        " WHERE new_token IS NOT NULL AND new_token IS DISTINCT FROM old_token GROUP BY 1"
    )
    return Counter(dict(rows))


def paid_calls(stack: Stack) -> Counter[tuple[str, str, str]]:
    """Successful provider calls per (photo, run, operation)."""
    rows = stack.sql(
        "SELECT photo_id::text, meta->>'run', operation, count(*) FROM aimetrics_aimetric"
        " WHERE success GROUP BY 1, 2, 3"
    )
    return Counter({(photo, run, operation): count for photo, run, operation, count in rows})


def metric_counts(stack: Stack) -> Counter[str]:
    """AiMetric rows by outcome: `ok`, or the error type."""
    rows = stack.sql(
        "SELECT CASE WHEN success THEN 'ok' ELSE error_type END, count(*)"
        " FROM aimetrics_aimetric GROUP BY 1"
    )
    return Counter({str(kind): count for kind, count in rows})


def provider_extra(stack: Stack, photos: int) -> int:
    """Good answers the provider sent beyond one per photo (paid twice): a photo costs one call,
    the room and the items in one answer."""
    assert stack.fake is not None
    stats = stack.fake.stats()
    return stats.get("ok:report_items", 0) + stats.get("ok:report_room", 0) - photos
