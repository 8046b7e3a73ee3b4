"""The latent-scale sweep's grid (sweep_latent_scale.py --scales auto), pure Python: the caller scores a
scale; and the points it scored, kept on disk (PointStore).

- bracket: a start grid, extended a step at a time beyond whichever edge holds the minimum, until the measure
  has risen on both sides of it; a minimum still at the set bound is a one-line error.
- refine: the step between the minimum and a neighbour halved where the two differ by less than the noise.
- seed_noise: that noise, from values measured twice with two sample seeds.
- crossing: the scale where a curve reaches a level (the pixel variance ratio reaching the data's 1).
- PointStore: each scored point kept on disk as it is made, so that a stopped sweep resumes.
"""

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence

from vaevar import files
from vaevar.errors import VaevarError

DECIMALS = 6  # scales rounded, so that 1.6 + 0.2 is 1.8 and not 1.8000000000000003


def _rounded(scale: float) -> float:
    return round(float(scale), DECIMALS)


@dataclasses.dataclass(frozen=True)
class AutoScales:
    """--scales auto: the start grid, the bounds it may not extend past and the refinement's rounds."""

    start: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
    min_scale: float = 0.2
    max_scale: float = 3.0
    refine_rounds: int = 2

    def __post_init__(self):
        start = sorted(self.start)
        if len(start) < 3:
            raise VaevarError("--auto-start: give at least three scales, e.g. 0.6,0.8,1.0,1.2,1.4,1.6")
        if not 0 < self.min_scale <= start[0] or start[-1] > self.max_scale:
            raise VaevarError(
                f"--auto-min-scale {self.min_scale:g} and --auto-max-scale {self.max_scale:g} must enclose "
                f"--auto-start ({start[0]:g} ... {start[-1]:g}), the minimum above 0"
            )
        if self.refine_rounds < 0:
            raise VaevarError(f"--auto-refine-rounds must be >= 0, got {self.refine_rounds}")


def lowest(values: Mapping[float, float]) -> float:
    """The scale of the smallest value (the lowest scale among equal ones)."""
    return min(sorted(values), key=values.__getitem__)


def bracket(score: Callable[[float], float], settings: AutoScales, label: str) -> dict[float, float]:
    """Scores settings.start, then one more scale beyond the edge that holds the minimum (a step of that
    edge's own spacing, clamped to the bound) until a higher value lies on either side of the minimum.
    Returns scale -> value. label names the measure in the error, e.g. "gen2's FID"."""
    values = {_rounded(s): score(_rounded(s)) for s in settings.start}
    while True:
        scales = sorted(values)
        best = lowest(values)
        if scales[0] < best < scales[-1]:
            return values
        if best == scales[-1]:
            if best >= settings.max_scale:
                raise VaevarError(
                    f"--scales auto: {label} still falls at s = {best:g}, the bound: the grid cannot bracket "
                    f"its optimum within --auto-max-scale {settings.max_scale:g}; raise --auto-max-scale"
                )
            new = min(_rounded(best + scales[-1] - scales[-2]), settings.max_scale)
        else:
            if best <= settings.min_scale:
                raise VaevarError(
                    f"--scales auto: {label} still falls at s = {best:g}, the bound: the grid cannot bracket "
                    f"its optimum within --auto-min-scale {settings.min_scale:g}; lower --auto-min-scale"
                )
            new = max(_rounded(best - (scales[1] - scales[0])), settings.min_scale)
        values[new] = score(new)


def refine(
    score: Callable[[float], float], values: dict[float, float], threshold: float, rounds: int
) -> list[float]:
    """Up to `rounds` times, halves the step between the minimum and each neighbour whose value lies within
    `threshold` of it (the two cannot be told apart), so that the flat bottom is sampled finer. Adds the new
    scales' values to `values`; returns the scales added, in order."""
    added = []
    for _ in range(rounds):
        scales = sorted(values)
        at = scales.index(lowest(values))
        new = [
            _rounded((scales[at] + scales[j]) / 2)
            for j in (at - 1, at + 1)
            if 0 <= j < len(scales) and abs(values[scales[j]] - values[scales[at]]) < threshold
        ]
        new = [s for s in new if s not in values]
        if not new:
            break
        for scale in new:
            values[scale] = score(scale)
        added += new
    return added


NOISE_DEFINITION = (
    "difference_sd: sqrt(mean over the repeated scales of (value at the second seed - value at the first)^2), "
    "the SD of the difference between two sample seeds' values at one scale (its expectation 0), which is "
    "also the SD of a difference between two independently sampled points; sd = difference_sd / sqrt(2), one "
    "value's sampling SD; pairs: the repeated scales (the degrees of freedom)"
)


def seed_noise(pairs: Sequence[tuple[float, float]]) -> dict[str, float | int | None]:
    """The sampling noise from (first seed's value, second seed's value) pairs, the same model, scale and
    reference on both sides: NOISE_DEFINITION. None without pairs."""
    if not pairs:
        return {"difference_sd": None, "sd": None, "pairs": 0}
    difference_sd = math.sqrt(sum((b - a) ** 2 for a, b in pairs) / len(pairs))
    return {"difference_sd": difference_sd, "sd": difference_sd / math.sqrt(2), "pairs": len(pairs)}


def crossing(scales: Sequence[float], values: Sequence[float], level: float = 1.0) -> float | None:
    """The lowest scale at which the curve reaches `level`, linearly interpolated between neighbouring
    points; None if it never does within the grid."""
    points = sorted(zip(scales, values))
    for (s0, v0), (s1, v1) in zip(points, points[1:]):
        if v0 == level:
            return float(s0)
        if (v0 - level) * (v1 - level) < 0:
            return float(s0 + (level - v0) * (s1 - s0) / (v1 - v0))
    if points and points[-1][1] == level:
        return float(points[-1][0])
    return None


class PointStore:
    """A sweep's scored points, one JSON file each in `folder` beside the settings they were scored under
    (`key`: the models' digests, the sample counts and seeds, the FID settings). A rerun with the same key
    reads a point instead of scoring it again: a sweep stopped after an hour resumes where it stopped. A
    point scored under another key is scored again (and replaced)."""

    def __init__(self, folder: str, key: Mapping[str, object]):
        self.folder = folder
        self.key = json.loads(json.dumps(dict(key), sort_keys=True))  # as it reads back from a file
        self.read = 0  # points read back by this sweep

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.json")

    def _kept(self, name: str) -> dict | None:
        """The point kept under `name` with this store's key, else None."""
        path = self._path(name)
        if not os.path.exists(path):
            return None
        stored = files.load_json(path)  # whole: written atomically
        return stored["point"] if stored.get("key") == self.key else None

    def get(self, name: str) -> dict | None:
        point = self._kept(name)
        if point is not None:
            self.read += 1
        return point

    def put(self, name: str, point: dict) -> dict:
        """Keep `point` under `name`; returns it as a rerun reads it (JSON's numbers)."""
        os.makedirs(self.folder, exist_ok=True)
        files.save_json(self._path(name), {"key": self.key, "point": point})
        return files.load_json(self._path(name))["point"]

    def put_missing(self, points: Mapping[str, dict]) -> int:
        """Keep each of `points` (name -> point) not already kept under this store's key, without counting
        reads; returns how many were written."""
        missing = {name: point for name, point in points.items() if self._kept(name) is None}
        for name, point in missing.items():
            self.put(name, point)
        return len(missing)

    def made(self, name: str, score: Callable[[], dict]) -> dict:
        """The point `name`: read back, or scored by `score` and kept."""
        point = self.get(name)
        return point if point is not None else self.put(name, score())
