"""Escalating attacks on a whole input region while a proof search runs (counterexamples too rare for the
first quick attack).

An attack draws N random points of the box [lo, hi]; for each disjunct (rows A_s y <= b_s) it starts from
the points of smallest margin max_i (A_s y - b_s)_i and descends that margin with projected Adam (Kingma
and Ba 2015; the gradient of the worst row, c·∂y/∂x, from a vector-Jacobian product), its step decaying
linearly to 0. Adam, unlike signed-gradient PGD, follows the nearly tied rows of ACAS Xu properties:
on prop_7 of network 1_9 the signed steps never reached a counterexample from 65,536 samples in 5 seeds,
Adam did in 1 of 5 seeds (2 of 5 from 262,144). Each failed attack doubles the next one's samples, and
attacks run only while their total time stays within ``SHARE`` of the search's elapsed time, so easy
instances never pay much for them. Input splitting offers an attack every round (``split_search``'s
``background``) once it is ``FIRST_AFTER`` old. Full ACAS Xu runs (186 instances, 2 jobs, face points
below, no FIRST_AFTER yet): total 186.1 s with 0.1, 182.0 s with 0.03 (the holds pay less, 1_5 and 5_3
prop_2 wait longer: 1.4 / 0.7 s against 4.2 / 3.0 s); 0.05 is between.

Half of the points are drawn on the box's faces: each of their coordinates sits at its lower or upper
bound with probability ``FACE_SHARE`` / 2 each. A piecewise-linear margin takes its minimum at a vertex of
its linear pieces, often on the box's boundary (1_9 prop_7's counterexample has x_2 at its lower bound).
Measured over 5 seeds: uniform points alone needed 2-8 attacks (0.1-2.7 s) on 1_9 prop_7, the mix found
it in the first attack (0.01 s) every time; 5_3 prop_2 took 1-3 attacks either way (faces only: 5-6).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: samples of the first attack and the cap of the doubling
FIRST_SAMPLES, MAX_SAMPLES = 1 << 12, 1 << 18
#: Adam starts per disjunct, steps, and first step as a fraction of each input's width
STARTS, STEPS, LR = 64, 100, 0.01
#: attacks take at most this share of the time since the attacker was made
SHARE = 0.05
#: no attack before the search is this many seconds old: most ACAS Xu instances are decided sooner, and
#: a first attack (~0.15 s, mostly its Adam descent) ran on every one of them (0.24 s instead of ~0.1 s
#: for a 3-box proof)
FIRST_AFTER = 0.25
#: in the second half of the samples, the probability that a coordinate is put at a bound of the box
FACE_SHARE = 0.5
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-30


def adam_descent(forward: Callable, backward: Callable, A: np.ndarray, b: np.ndarray, starts: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, check: Callable, steps: int = STEPS, lr: float = LR,
                 check_time: Callable | None = None):
    """Projected Adam on max_i (A y(x) - b)_i from each row of ``starts`` (N, n) inside [lo, hi]; points whose
    margin reaches <= 0 go to ``check(x)`` (a re-checked counterexample or None). ``forward(x)`` -> y (N, m),
    ``backward(x, c)`` -> c·∂y/∂x per point. Returns the first counterexample, or None."""
    x = np.clip(np.asarray(starts, np.float64), lo, hi)
    m1, m2 = np.zeros_like(x), np.zeros_like(x)
    width = hi - lo
    for t in range(1, steps + 1):
        d = forward(x) @ A.T - b
        for i in np.flatnonzero(d.max(axis=1) <= 0)[:4]:
            found = check(x[i])
            if found is not None:
                return found
        if check_time is not None:
            check_time()
        g = backward(x, A[np.argmax(d, axis=1)])
        m1 = ADAM_B1 * m1 + (1 - ADAM_B1) * g
        m2 = ADAM_B2 * m2 + (1 - ADAM_B2) * g * g
        step = lr * width * (1.0 - (t - 1) / steps)
        x = np.clip(x - step * (m1 / (1 - ADAM_B1 ** t)) / (np.sqrt(m2 / (1 - ADAM_B2 ** t)) + ADAM_EPS), lo, hi)
    d = forward(x) @ A.T - b
    for i in np.flatnonzero(d.max(axis=1) <= 0)[:4]:
        found = check(x[i])
        if found is not None:
            return found
    return None


@dataclass
class RegionAttack:
    """Call it now and then during a search: it attacks [lo, hi] when its time share allows (see the module
    docstring) and returns a re-checked counterexample or None. ``slices`` give each disjunct's rows of A, b."""

    forward: Callable
    backward: Callable
    A: np.ndarray
    b: np.ndarray
    slices: list
    lo: np.ndarray
    hi: np.ndarray
    check: Callable
    rng: np.random.Generator
    check_time: Callable | None = None
    samples: int = FIRST_SAMPLES
    spent: float = 0.0
    attacks: int = 0
    started: float = field(default_factory=time.perf_counter)

    def __call__(self):
        now = time.perf_counter()
        if now - self.started < FIRST_AFTER or self.spent > SHARE * (now - self.started):
            return None
        try:
            return self._attack()
        finally:
            self.spent += time.perf_counter() - now
            self.attacks += 1
            self.samples = min(2 * self.samples, MAX_SAMPLES)

    def _attack(self):
        x = self.lo + self.rng.random((self.samples, self.lo.size)) * (self.hi - self.lo)
        half = self.samples // 2
        u = self.rng.random((self.samples - half, self.lo.size))
        x[half:] = np.where(u < FACE_SHARE / 2, self.lo, np.where(u > 1 - FACE_SHARE / 2, self.hi, x[half:]))
        d = self.forward(x) @ self.A.T - self.b
        for s in self.slices:
            if s.stop == s.start:
                continue
            margin = d[:, s].max(axis=1)
            starts = x[np.argsort(margin)[:STARTS]]
            found = adam_descent(self.forward, self.backward, self.A[s], self.b[s], starts, self.lo, self.hi,
                                 self.check, check_time=self.check_time)
            if found is not None:
                return found
        return None


__all__ = ["RegionAttack", "adam_descent"]
