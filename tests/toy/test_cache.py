"""The toy world's cache key: it covers every module that decides a world's content, the spec and the seed."""

from __future__ import annotations

import dataclasses
import pkgutil

import limo_ray.toy
from limo_ray.toy.cache import CONTENT_MODULES, code_digest, world_hash
from limo_ray.toy.spec import TOY_SPECS

# Modules that only read a built world (resolving `toy:` paths, measuring calibration) or report a build's
# progress: editing them rebuilds nothing.
READERS = {"references", "report", "progress"}


def test_the_world_hash_covers_every_toy_module_but_the_readers() -> None:
    modules = {info.name for info in pkgutil.iter_modules(limo_ray.toy.__path__)}
    assert sorted(CONTENT_MODULES) == sorted(modules - READERS)


def test_the_world_hash_changes_with_the_seed_and_with_any_spec_number() -> None:
    spec = TOY_SPECS["test"]
    base = world_hash(spec, 0)
    assert base.startswith("test-") and world_hash(spec, 0) == base
    assert world_hash(spec, 1) != base
    assert world_hash(dataclasses.replace(spec, pool_size=spec.pool_size + 1), 0) != base
    assert world_hash(dataclasses.replace(spec, weak=dataclasses.replace(spec.weak, lr=2e-3)), 0) != base


CODE = '''"""A module."""
def level(k: int) -> int:
    """Steps at level k."""
    return k + 1  # one step more
'''


def test_comments_docstrings_and_layout_leave_the_code_digest_alone_and_any_code_change_moves_it() -> None:
    reworded = CODE.replace("A module.", "Another text.").replace("Steps at level k.", "Why: ...")
    reformatted = reworded.replace("  # one step more", "").replace("k + 1", "(k+1)")
    assert code_digest(reworded) == code_digest(reformatted) == code_digest(CODE)
    assert code_digest(CODE.replace("k + 1", "k + 2")) != code_digest(CODE)
    assert code_digest(CODE.replace('int:\n    """', 'int:\n    x = 0\n    """')) != code_digest(CODE)
    # A string that is not the first statement is code (a template, say), not a docstring.
    assert code_digest(CODE + 'TEMPLATE = "What is {a} + {b}?"\n') != code_digest(CODE + 'TEMPLATE = "What is {a}?"\n')
