"""The fuzz harness: every call counted, and anything but an EdgemedError escaping fails the test.

Profiles (set EDGEMED_FUZZ): `ci` (default, quick) and `long` (run by hand: `make fuzz`). The counts of calls and
unexpected exceptions per target are printed at the end of the session and, with EDGEMED_FUZZ_REPORT=path,
written there as JSON.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

from edgemed.core.errors import EdgemedError

CALLS: Counter = Counter()
UNEXPECTED: Counter = Counter()
PROFILE = os.environ.get("EDGEMED_FUZZ", "ci")

settings.register_profile("ci", max_examples=120, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
FUZZ = settings.get_profile(PROFILE)


def call(target: str, fn, *args, **kwargs):
    """Run `fn`; an EdgemedError is an expected refusal (returns None), anything else fails loudly."""
    CALLS[target] += 1
    try:
        return fn(*args, **kwargs)
    except EdgemedError:
        return None
    except Exception as exc:
        UNEXPECTED[target] += 1
        raise AssertionError(f"{target}: unexpected {type(exc).__name__}: {exc}") from exc
