"""The extension's logger and the kinds of warning it emits.

Every warning is logged with ``type="lab"`` and one of these subtypes, and
with a location, so that ``suppress_warnings = ["lab.finding"]`` silences one
kind and every message names the page and line it comes from.
"""

from __future__ import annotations

from enum import StrEnum

from sphinx.util import logging

logger = logging.getLogger("sphinx_lab")

WARNING_TYPE = "lab"


class LabWarning(StrEnum):
    """The subtypes of ``lab`` warnings (``suppress_warnings = ["lab.<subtype>"]``)."""

    OPTION = "option"  # a directive option with a bad value, a missing note file or no checks
    CAPTURE = "capture"  # unknown experiment or run, or the run could not be captured
    FINDING = "finding"  # a finding that does not hold in this build's capture
    CHECK_SYNTAX = "check-syntax"  # a check line that is malformed or names what the run lacks
    MARKUP = "markup"  # a MyST ```{finding} or ```{experiment} fence that was read as plain text
    EVIDENCE = "evidence"  # a recorded run that is missing, corrupt, of another schema or made from other sources
    DIAGRAM = "diagram"  # a run whose segments and tables disagree: its pictures would not be true
    STANDS = "stands"  # a {stands} label with an unknown kind or without its detail


def warn(subtype: LabWarning, message: str, location: object) -> None:
    logger.warning(message, location=location, type=WARNING_TYPE, subtype=subtype.value)
