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

from lab.isolation import Isolation, IsolationError, run_isolated
from lab.packets import CaptureUnavailable, LoopbackCapture


@dataclass(frozen=True)
class HostCapability:
    """Whether a live run here shows everything a page can show, and if not, what is missing."""

    kernel: str
    missing: tuple[str, ...]  # one phrase per thing this host cannot do, e.g. "packets (needs CAP_NET_RAW ...)"

    @property
    def can_capture(self) -> bool:
        return not self.missing

    @property
    def reason(self) -> str:
        """``no network namespace (...); no packets (...)``: what a page says this host could not capture."""
        return "; ".join(self.missing)


def _look_around(isolation: Isolation) -> tuple[str, ...]:
    """Runs in the isolated child: the same place a run would be."""
    missing = []
    if not isolation.isolated:
        missing.append(f"no network namespace ({isolation.reason})")
    try:
        with LoopbackCapture():
            pass
    except CaptureUnavailable as error:
        missing.append(f"no packets ({error.reason})")
    return tuple(missing)


@functools.cache
def probe_host() -> HostCapability:
    try:
        missing = run_isolated(_look_around)
    except (IsolationError, OSError) as error:
        missing = (f"no isolated run at all ({error})",)
    return HostCapability(kernel=f"{platform.system()} {platform.release()}", missing=missing)
