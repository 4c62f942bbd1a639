"""What the fuzz tests share: how many examples to try, and the tally of cases they print at the end.

`FUZZ_MAX_EXAMPLES=500 .venv/bin/pytest tests/gateway_project/test_fuzz_management.py tests/relay/test_fuzz_relay.py`
explores further than the defaults, which keep each file well under 90 s on two cores. FUZZ_SCALE multiplies the
defaults: scripts/test-matrix.sh runs half of them on PostgreSQL and MariaDB (all of them on SQLite).
"""

from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

from gateway_project.env import envfloat, envint


def examples(default: int) -> int:
    """`default` x FUZZ_SCALE, or FUZZ_MAX_EXAMPLES when set: the examples one fuzz test tries."""
    return envint("FUZZ_MAX_EXAMPLES", max(1, round(default * envfloat("FUZZ_SCALE", 1.0))))


def fuzz_settings(default_examples: int) -> settings:
    # Derandomized so a run in CI is the same run as on a laptop; no example database left in the tree.
    return settings(
        max_examples=examples(default_examples),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


class Tally:
    """Cases tried per category and status class, printed as one summary line per category."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, category: str, status: int) -> None:
        self.counts[category, str(status) if status >= 500 else f"{status // 100}xx"] += 1

    def lines(self) -> list[str]:
        categories = sorted({category for category, _ in self.counts})
        total = sum(self.counts.values())
        server_errors = sum(n for (_, kind), n in self.counts.items() if kind.startswith("5"))
        lines = [f"{self.title}: {total} cases, {server_errors} answered 5xx"]
        for category in categories:
            by_kind = {kind: n for (name, kind), n in sorted(self.counts.items()) if name == category}
            detail = ", ".join(f"{kind} {n}" for kind, n in by_kind.items())
            lines.append(f"  {category}: {sum(by_kind.values())} cases ({detail})")
        return lines


def report(request: pytest.FixtureRequest, tally: Tally) -> None:
    """Print the tally past pytest's output capture (a module fixture's teardown is captured otherwise)."""
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print("\n" + "\n".join(tally.lines()))
