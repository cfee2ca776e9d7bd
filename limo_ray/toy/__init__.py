"""The toy world: procedurally generated math problems, reference chains at LIMO's quality levels, a tokenizer
and tiny Qwen2 models (weak, strong, strong_b, student) trained on CPU, built once and cached by content hash.

It is the embedded default of the `tiny` preset: real HF checkpoints served by the same vLLM engine code as the
cluster, in a world where a weak model really fails hard problems and a strong one solves some.
"""

from limo_ray.toy.cache import ToyWorld, build_toy_world, cache_root, world_hash
from limo_ray.toy.chains import QUALITY_LEVELS, reference_chain
from limo_ray.toy.problems import DOMAINS, LEVELS, ToyProblem, generate_problems, generate_toy_problems
from limo_ray.toy.report import CalibrationReport, calibration_report, level_table
from limo_ray.toy.spec import MODEL_NAMES, TOY_SPECS, ToySpec, toy_spec

__all__ = [
    "DOMAINS",
    "LEVELS",
    "MODEL_NAMES",
    "QUALITY_LEVELS",
    "TOY_SPECS",
    "CalibrationReport",
    "ToyProblem",
    "ToySpec",
    "ToyWorld",
    "build_toy_world",
    "cache_root",
    "calibration_report",
    "generate_problems",
    "generate_toy_problems",
    "level_table",
    "reference_chain",
    "toy_spec",
    "world_hash",
]
