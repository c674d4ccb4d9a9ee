"""absint.fp: the rounding-error bound of a running constant's additions holds exactly (rational
arithmetic), including sums that cancel, where the partial sums are far larger than the total."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from absint.fp import addition_error

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@given(st.lists(finite, min_size=2, max_size=12))
def test_addition_error_bounds_every_running_addition(terms):
    """Summing ``terms`` left to right in float64 while adding each addition's ``addition_error`` to a
    slack: the exact sum is within the slack of the float sum."""
    total, slack = np.float64(terms[0]), Fraction(0)
    for t in terms[1:]:
        total = total + np.float64(t)
        slack += Fraction(float(addition_error(np.array([total]))[0]))
    assert abs(Fraction(float(total)) - sum(Fraction(t) for t in terms)) <= slack


def test_addition_error_covers_a_cancelling_sum_that_the_final_total_does_not():
    """2^54, then ten -1 (each lost to rounding), then -2^54: the float total is 0 and the exact one -10,
    so any bound proportional to the final total fails; the running bound covers the loss."""
    terms = [2.0 ** 54] + [-1.0] * 10 + [-(2.0 ** 54)]
    total, slack = np.float64(0.0), 0.0
    for t in terms:
        total = total + np.float64(t)
        slack += float(addition_error(np.array([total]))[0])
    assert total == 0.0  # the ten -1 were rounded away
    assert slack >= 10.0
    assert float(addition_error(np.array([1.0]), np.array([-3.0]))[0]) == 6.0 * 2.0 ** -53
