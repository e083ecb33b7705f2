"""What this host can capture: a network namespace of its own, and the packets in it.

Sphinx-free.  The probe asks the lab's own code, the way a run would: it
forks through ``lab.isolation.run_isolated`` (so it meets the same refusals,
``$LAB_ISOLATION`` included) and opens the lab's packet socket there.  Where
either fails, a page's tables would come from the machine's loopback or its
segments and pictures would be missing, so ``auto`` mode takes the recorded
evidence instead and ``force`` mode says what it could not check.

The answer cannot change during a build, so it is taken once per process
(``sphinx-build -j`` forks its readers after the main process has asked).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

from lab.evidence import capture_problem


@dataclass(frozen=True)
class HostCapability:
    """Whether a live run here shows everything a page can show, and if not, what is missing."""

    kernel: str
    problem: str | None  # e.g. "no network namespace: ...", as lab.evidence.capture_problem() says it

    @property
    def can_capture(self) -> bool:
        return self.problem is None

    @property
    def reason(self) -> str:
        """What a page says this host could not capture."""
        return self.problem or ""


@functools.cache
def probe_host() -> HostCapability:
    # The same question `make captures` asks before it records: one probe for both.
    return HostCapability(kernel=f"{platform.system()} {platform.release()}", problem=capture_problem())
