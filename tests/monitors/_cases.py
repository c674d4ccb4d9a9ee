"""A reduced digits case for quick monitor tests (import as ``tests.monitors._cases``)."""

from __future__ import annotations

from absint.monitors.cases import MonitorCase, Split


def small_case(net, n_test: int = 60) -> MonitorCase:
    """The digits case with its test split and OoD sets cut to ``n_test`` rows (quick tests)."""
    from absint.monitors.cases import digits_case

    case = digits_case(net.input_shape, ood=("noise", "inverted"))
    return MonitorCase(case.name, case.fit, case.val, Split(case.test.x[:n_test], case.test.y[:n_test]),
                       {k: v[:n_test] for k, v in case.ood.items()}, case.note)
