"""How sure the report is: bootstrap intervals of a metric's mean and paired comparisons of two groups on the same users.

Every function takes a metric of `odmt evaluate`'s user_metrics.parquet as a (seeds, users) array: row s is one
seed (run) of a group, column u one test user, the same user and target in every row and in every group compared
(the report checks that the runs share their test cases before it calls anything here). A 1-D array is one seed.
NumPy only, and seeded: the same values, sizes and seed give the same numbers, whatever else the report computes.

Interval of a mean (`mean_interval`): percentile bootstrap over seeds, then users. Each replicate draws S of the S
seeds with replacement, then U of the U users with replacement, one draw of users shared by the drawn seeds (a user
is the same test case under every seed: seeds and users are crossed, not nested), and takes the mean of that
seeds x users table. The interval holds the central `confidence` share of the replicates (linear interpolation
between order statistics, as numpy.percentile). With one seed it is the plain bootstrap over users.

Paired comparison (`compare`), seeds pooled: each user's metric is first averaged over each group's seeds, then
d_u = candidate_u - baseline_u. The difference is mean(d) (= the difference of the two groups' means); its interval
and that of the relative difference mean(d) / mean(baseline) resample users, the same draw for d and the baseline.
The p-value is a two-sided paired sign-flip permutation test over users: under "no difference" each d_u is as likely
as -d_u, so p = P(|sum of sign-flipped d| >= |sum d|). Users with d_u = 0 do not change under a flip and are left
out; when 2^n of the other n users is at most `permutations` every sign pattern is enumerated (exact p), otherwise
`permutations` random patterns give p = (1 + hits) / (1 + permutations), never 0.

Draws: users, seeds and sign patterns each come from their own generator, seeded with (seed, stream). Every interval
and comparison of one report on U users uses the same user draws (common random numbers: each result is what it would
be alone, and the draws are made once where they fit in memory).

Why pooled rather than stratified by seed: seed k of one model has nothing to do with seed k of another, so there is
no pairing of seeds to stratify on; groups may hold different numbers of seeds (Pop has one); and averaging over
seeds lowers the noise of each user's value. What it costs: the test and the difference's interval treat the trained
seeds as given. They say whether these models differ on these users, not whether retraining would reproduce the gap;
the seeds' spread is in each cell's interval (seeds resampled) and its mean +- std.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

CHUNK_ELEMENTS = 1 << 22  # replicates are drawn in blocks of at most this many user draws: bounded memory for any U
KEPT_ELEMENTS = 1 << 23  # user draws (replicates x users) kept for the next call up to this many: 64 MiB
USERS_STREAM, SEEDS_STREAM, SIGNS_STREAM = 0, 1, 2  # each kind of draw from its own generator, seeded [seed, stream]
TIE_TOLERANCE = 1e-9  # of the largest possible |sum|: flipped sums this close to the observed one are ties, not misses

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Comparison:
    """A candidate against a baseline on the same users, seeds pooled."""

    candidate: float  # mean over users
    baseline: float
    difference: float  # candidate - baseline
    difference_interval: Interval
    relative: float  # difference / baseline: +0.25 is 25% above; nan where the baseline's mean is 0
    relative_interval: Interval  # an end is +-inf where resampled users can leave the baseline at 0
    p_value: float  # two-sided paired sign-flip test over users
    exact: bool  # the p-value enumerated every sign pattern (else Monte Carlo)
    users: int
    differing: int  # users whose pooled metric differs between the two: the only ones the test sees


def seeds_by_users(values: ArrayLike) -> Floats:
    """`values` as a 2-D (seeds, users) float64 array; ValueError when it is empty."""
    table = np.asarray(values, dtype=np.float64)
    table = table[np.newaxis] if table.ndim == 1 else table
    if table.ndim != 2 or table.size == 0:
        raise ValueError(f"expected a non-empty (seeds, users) array, got shape {np.shape(values)}")
    return table


def pooled(values: ArrayLike) -> Floats:
    """Each user's metric averaged over the group's seeds: (users,)."""
    return seeds_by_users(values).mean(axis=0)


def quantile(ordered: Floats, q: float) -> float:
    """The q-quantile of sorted replicates, interpolated linearly (numpy's default), infinite ends allowed."""
    position = q * (len(ordered) - 1)
    below, above = ordered[int(np.floor(position))], ordered[int(np.ceil(position))]
    if below == above:  # also two equal infinities, which interpolation would turn into nan
        return float(below)
    return float(below + (above - below) * (position - np.floor(position)))


def percentile_interval(replicates: Floats, confidence: float) -> Interval:
    """The central `confidence` share of the bootstrap replicates."""
    ordered = np.sort(replicates)
    tail = (1 - confidence) / 2
    return Interval(quantile(ordered, tail), quantile(ordered, 1 - tail))


def blocks(samples: int, users: int) -> list[int]:
    """Replicates per block, so that a block draws at most CHUNK_ELEMENTS users."""
    size = max(1, CHUNK_ELEMENTS // users)
    return [min(size, samples - start) for start in range(0, samples, size)]


def draw_counts(rng: np.random.Generator, size: int, n: int) -> Floats:
    """(size, n): how often each of `size` replicates draws each of n units, drawing n of n with replacement.
    A replicate's mean of any per-unit vector x is then counts @ x / n: one matrix product for every x."""
    drawn = rng.integers(0, n, size=(size, n)) + np.arange(size)[:, np.newaxis] * n
    return np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


@functools.lru_cache(maxsize=1)
def kept_user_counts(users: int, samples: int, seed: int) -> tuple[Floats, ...]:
    """user_counts, kept for the report's next call (the last one only: at most KEPT_ELEMENTS floats)."""
    return tuple(draw_counts(np.random.default_rng([seed, USERS_STREAM]), size, users) for size in blocks(samples, users))


def user_counts(users: int, samples: int, seed: int) -> Iterator[Floats]:
    """The bootstrap's user draws, block by block: the same for every interval and comparison of one report (common
    random numbers, so each is what it would be alone, and the draws are made once where they fit in memory)."""
    if users * samples <= KEPT_ELEMENTS:
        yield from kept_user_counts(users, samples, seed)
        return
    rng = np.random.default_rng([seed, USERS_STREAM])
    for size in blocks(samples, users):
        yield draw_counts(rng, size, users)


def mean_interval(values: ArrayLike, confidence: float, samples: int, seed: int) -> Interval:
    """Percentile bootstrap interval of the mean over seeds and users: resample seeds, then users (module docstring)."""
    table = seeds_by_users(values)
    seeds, users = table.shape
    seed_rng = np.random.default_rng([seed, SEEDS_STREAM])
    replicates = []
    for counts in user_counts(users, samples, seed):
        seed_counts = draw_counts(seed_rng, len(counts), seeds)
        by_seed = counts @ table.T / users  # (replicates, seeds): the drawn users' mean under each seed
        replicates.append((seed_counts * by_seed).sum(axis=1) / seeds)
    return percentile_interval(np.concatenate(replicates), confidence)


def ratio(difference: Floats, baseline: Floats) -> Floats:
    """difference / baseline per replicate; a replicate whose baseline is 0 is +-inf by the difference's sign, 0 if none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        unbounded = np.where(difference == 0, 0.0, np.copysign(np.inf, difference))
        return np.where(baseline != 0, difference / np.where(baseline != 0, baseline, 1.0), unbounded)


def sign_flip_p_value(differences: ArrayLike, permutations: int, seed: int) -> tuple[float, bool]:
    """Two-sided paired sign-flip test of mean(differences) = 0: (p, exact). Exact when 2^n <= permutations for
    the n non-zero differences, else Monte Carlo with the +1 correction (module docstring)."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]  # a flip leaves a zero as it is
    n = len(d)
    if n == 0:
        return 1.0, True
    threshold = abs(float(d.sum())) - TIE_TOLERANCE * float(np.abs(d).sum())
    exact = n < 63 and 2**n <= permutations
    total = 2**n if exact else permutations
    rng = np.random.default_rng([seed, SIGNS_STREAM])
    hits, done, observed = 0, 0, float(d.sum())
    for size in blocks(total, n):
        if exact:  # pattern i flips the users whose bit is set in i
            flipped = (np.arange(done, done + size, dtype=np.int64)[:, np.newaxis] >> np.arange(n) & 1).astype(np.float64)
        else:  # a random bit per user and pattern, eight to a drawn byte
            bits = np.unpackbits(np.frombuffer(rng.bytes(size * -(-n // 8)), dtype=np.uint8).reshape(size, -1), axis=1)
            flipped = bits[:, :n].astype(np.float64)
        sums = observed - 2.0 * (flipped @ d)  # each pattern's sum of sign-flipped differences
        hits += int((np.abs(sums) >= threshold).sum())
        done += size
    return (hits / total, True) if exact else ((1 + hits) / (1 + permutations), False)


def compare(candidate: ArrayLike, baseline: ArrayLike, confidence: float, samples: int, permutations: int, seed: int) -> Comparison:
    """Candidate against baseline on the same users, seeds pooled: the difference and the relative difference with their
    percentile bootstrap intervals over users, and the sign-flip p-value (module docstring)."""
    a, b = pooled(candidate), pooled(baseline)
    if a.shape != b.shape:
        raise ValueError(f"a paired comparison needs the same users: {a.shape[0]} against {b.shape[0]}")
    d = a - b
    users = len(d)
    replicates = np.concatenate([counts @ np.stack([d, b], axis=1) / users for counts in user_counts(users, samples, seed)])
    difference, base = float(d.mean()), float(b.mean())
    p_value, exact = sign_flip_p_value(d, permutations, seed)
    return Comparison(
        candidate=float(a.mean()),
        baseline=base,
        difference=difference,
        difference_interval=percentile_interval(replicates[:, 0], confidence),
        relative=difference / base if base != 0 else float("nan"),
        relative_interval=percentile_interval(ratio(replicates[:, 0], replicates[:, 1]), confidence),
        p_value=p_value,
        exact=exact,
        users=users,
        differing=int((d != 0).sum()),
    )
