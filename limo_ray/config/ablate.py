"""The `ablate:` section: the studies `limo ablate` runs (quality, difficulty, size, selection, backbone)."""

from __future__ import annotations

import itertools

from pydantic import Field, field_validator, model_validator

from limo_ray.config.base import StrictModel


class QualityStudyConfig(StrictModel):
    # Problems per arm; fewer when fewer curated problems have a correct chain at every level of `levels`.
    problems: int = Field(default=500, gt=0)
    # Chains drawn per chain model for this study (the curation's are reused, only the rest are drawn): more
    # chains per problem, more problems with all five levels. None: curate.chains.per_model.
    chains_per_model: int | None = Field(default=None, gt=0)
    # The quality levels (the project's scorer's L1..L5) with an arm each, the paper's five by default. Chain
    # models that never write at some level (the scorer places none of their chains there) need the levels
    # they do write: with a missing level no problem has a chain at every level.
    levels: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=2)

    @field_validator("levels")
    @classmethod
    def _distinct_scorer_levels(cls, levels: list[int]) -> list[int]:
        if any(level not in range(1, 6) for level in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"distinct levels from 1 to 5, got {levels}")
        return sorted(levels)


class DifficultyBin(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    # Where the strong filter measured a problem: its successes / attempts falls in [low, high) (1.0 included).
    solve_rate: list[float] = Field(min_length=2, max_length=2)
    # Otherwise: the number in the source's level label ("Level 3", "3").
    levels: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rate_range(self) -> DifficultyBin:
        low, high = self.solve_rate
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"ablate.difficulty bin {self.name!r}: solve_rate needs 0 <= low < high <= 1")
        return self


class DifficultyStudyConfig(StrictModel):
    problems: int = Field(default=500, gt=0)  # per arm (bin); every arm gets the same number
    # Easiest first; the last bin is the reference arm. A problem belongs to the first bin it fits.
    bins: list[DifficultyBin] = Field(
        default_factory=lambda: [
            DifficultyBin(name="simple", solve_rate=[0.5, 1.0], levels=[1, 2]),
            DifficultyBin(name="complex", solve_rate=[0.125, 0.5], levels=[3, 4]),
            DifficultyBin(name="advanced", solve_rate=[0.0, 0.125], levels=[5]),
        ]
    )

    @model_validator(mode="after")
    def _bins_disjoint(self) -> DifficultyStudyConfig:
        if len(self.bins) < 2:
            raise ValueError("ablate.difficulty.bins: a study needs two or more bins")
        names = [b.name for b in self.bins]
        if len(set(names)) != len(names):
            raise ValueError(f"ablate.difficulty.bins: names repeat ({', '.join(names)})")
        ranges = sorted(b.solve_rate for b in self.bins)
        if any(a[1] > b[0] for a, b in itertools.pairwise(ranges)):
            raise ValueError(f"ablate.difficulty.bins: solve_rate ranges overlap ({ranges})")
        levels = [level for b in self.bins for level in b.levels]
        if len(set(levels)) != len(levels):
            raise ValueError(f"ablate.difficulty.bins: a level is in two bins ({levels})")
        return self


class SizeStudyConfig(StrictModel):
    sizes: list[int] = Field(default_factory=lambda: [200, 400, 817])  # nested subsets of the curated set

    @model_validator(mode="after")
    def _sizes_rise(self) -> SizeStudyConfig:
        if len(self.sizes) < 2 or any(s <= 0 for s in self.sizes) or sorted(set(self.sizes)) != self.sizes:
            raise ValueError(f"ablate.size.sizes: two or more distinct positive sizes, smallest first ({self.sizes})")
        return self


class SelectionStudyConfig(StrictModel):
    size: int | None = Field(default=None, gt=0)  # samples per arm; None: the curated set's size


class BackboneStudyConfig(StrictModel):
    # Model names under `models:` trained on the same curated set; empty: train.model alone (not a study).
    students: list[str] = Field(default_factory=list)


class AblateConfig(StrictModel):
    # Repeats per study (seed, seed + 1, ...: the arms' sampling and the training differ); `--repeats` wins.
    repeats: int = Field(default=1, gt=0)
    quality: QualityStudyConfig = Field(default_factory=QualityStudyConfig)
    difficulty: DifficultyStudyConfig = Field(default_factory=DifficultyStudyConfig)
    size: SizeStudyConfig = Field(default_factory=SizeStudyConfig)
    selection: SelectionStudyConfig = Field(default_factory=SelectionStudyConfig)
    backbone: BackboneStudyConfig = Field(default_factory=BackboneStudyConfig)
