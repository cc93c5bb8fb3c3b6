"""One wording for whether a claim holds (bnlab.analysis.verdicts), used by every study and the claims table."""

import numpy as np
import pytest

from bnlab.analysis.verdicts import CLAIM_VERDICTS, claim_verdict


@pytest.mark.parametrize("checks, expected", [
    ([True], "holds"),
    ([True, True, True], "holds"),
    ([False], "does not hold"),
    ([False, False], "does not hold"),
    ([True, False], "holds in part"),
    ([False, False, True], "holds in part"),
])
def test_claim_verdict(checks, expected):
    assert claim_verdict(checks) == expected
    assert expected in CLAIM_VERDICTS


def test_claim_verdict_reads_numpy_booleans_and_generators():
    assert claim_verdict(value < 1 for value in np.array([0.5, 2.0])) == "holds in part"
    assert claim_verdict(np.array([True, True])) == "holds"


def test_claim_verdict_without_a_check_is_an_error():
    with pytest.raises(ValueError, match="at least one check of the claim.*Received none"):
        claim_verdict([])
