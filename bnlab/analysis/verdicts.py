"""Whether a paper's claim holds in a run, in the same words everywhere in the report.

A claim is checked by one or more tests (one per window, target or comparison), each passed or
failed; `claim_verdict` turns them into "holds", "holds in part" or "does not hold". The declared
claims of a config, the Figure 1 drift claim and the learning-rate claim all read the same way.

Example:
    >>> claim_verdict([True, False, True])
    'holds in part'
"""

from __future__ import annotations

from collections.abc import Iterable

HOLDS = "holds"
HOLDS_IN_PART = "holds in part"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"  # a declared claim whose test decides neither way
CLAIM_VERDICTS = (HOLDS, HOLDS_IN_PART, DOES_NOT_HOLD, INCONCLUSIVE)


def claim_verdict(checks: Iterable[bool]) -> str:
    """The verdict on a claim from the outcome of each of its checks.

    Args:
        checks: One boolean per check of the claim (True: the check agrees with the claim).

    Returns:
        "holds" when every check agrees, "does not hold" when none does, else "holds in part".

    Raises:
        ValueError: If there is no check: a claim without a test has no verdict.
    """
    outcomes = [bool(check) for check in checks]
    if not outcomes:
        raise ValueError("Expected at least one check of the claim to give a verdict. Received none.")
    if all(outcomes):
        return HOLDS
    return HOLDS_IN_PART if any(outcomes) else DOES_NOT_HOLD
