"""Builders and data that several test packages use; test modules import them from here, never from each other.

- `build_tiny_checkpoint`: a random tiny Qwen2 checkpoint with a Qwen-style tokenizer (serve, engine, train, CLI);
- `limo_rows` / `write_jsonl`: LIMO-format samples and a jsonl writer;
- `toy_problem_pool`: toy problems as `Problem` rows (balance, selection, the random baseline);
- `MALFORMED_JSONL_LINES` / `write_malformed_jsonl`: a pool file with one bad row of every kind (records, ingest);
- `eval_config` / `mini_benchmark` / `solve_sum`: an evaluation config, a small registered benchmark of sums and
  the answer rule of a fake server that solves it (evaluate, serve);
- `QWEN32_CONFIG`: Qwen2.5-32B-Instruct's published config.json (architectures, training memory).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.config import LIMO_SYSTEM_PROMPT, RunConfig, load_config
from limo_ray.records import Problem
from limo_ray.toy.problems import generate_toy_problems
from limo_ray.toy.tokenizer import ENDOFTEXT, IM_END, IM_START, chat_template

# ----------------------------------------------------------------------------------------------- tiny Qwen2

# Qwen2's split regex (transformers' tokenization_qwen2), so that training the BPE matches its reload.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen's ChatML, the toy world's own: a conversation without a system message gets the paper's system prompt.
CHAT_TEMPLATE = chat_template()


def limo_rows(count: int, seed: int = 0, max_steps: int = 12) -> list[dict[str, Any]]:
    """LIMO-format samples (`id, system, problem, response, answer, provenance`): sums done step by step.

    Responses end in `\\boxed{N}` and vary in length (a few to a few dozen steps), so packing has something
    to pack."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        terms = [rng.randint(1, 60) for _ in range(rng.randint(2, max_steps))]
        total, lines = 0, []
        for term in terms:
            lines.append(f"Add {term}: {total} + {term} = {total + term}.")
            total += term
        problem = "What is " + " + ".join(map(str, terms)) + "?"
        response = "Let us add the terms one by one.\n" + "\n".join(lines) + f"\nSo the answer is \\boxed{{{total}}}."
        rows.append(
            {
                "id": f"sum-{seed}-{i}",
                "system": LIMO_SYSTEM_PROMPT,
                "problem": problem,
                "response": response,
                "answer": str(total),
                "provenance": {"source": "tests/fixtures.py", "seed": seed},
            }
        )
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def build_tiny_checkpoint(folder: Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Save a randomly initialised tiny Qwen2 (fp32, servable in bf16) with tokenizer and chat template.

    Built in about a second, so unit tests need no toy world; random weights are enough for tests of
    plumbing (HTTP surface, queueing, training steps), not of answers. The tokenizer is a byte-level BPE
    trained on the byte-level alphabet and saved as `Qwen2Tokenizer` beside a `qwen2` config.json, so it
    reloads through `AutoTokenizer` exactly as it was trained: a folder whose config.json says `qwen2` reloads
    as `Qwen2Tokenizer`, which rebuilds its own byte-level pre-tokenizer, and a vocabulary not built on the
    byte-level alphabet would then lose every space and newline.
    """
    import torch
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    corpus = [f"{r['problem']}\n{r['response']}\n{LIMO_SYSTEM_PROMPT}" for r in limo_rows(200, seed=seed + 1)]
    bpe = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=420,
        special_tokens=[ENDOFTEXT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=dict(state["vocab"]),
        merges=merges,
        unk_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        model_max_length=512,
        additional_special_tokens=[IM_START, IM_END],
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    torch.manual_seed(seed)
    vocab = len(tokenizer)
    config = Qwen2Config(
        vocab_size=vocab + (-vocab % 64),  # padded like real checkpoints: rows past the tokenizer exist
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    )
    folder.mkdir(parents=True, exist_ok=True)
    Qwen2ForCausalLM(config).save_pretrained(folder)  # first: the tokenizer must be saved beside a qwen2 config.json
    tokenizer.save_pretrained(folder)
    GenerationConfig(eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id).save_pretrained(folder)
    reloaded = AutoTokenizer.from_pretrained(folder)
    sample = limo_rows(1, seed=seed)[0]["response"]
    assert reloaded.decode(reloaded.encode(sample, add_special_tokens=False)) == sample, "tokenizer round trip"
    return folder


# ----------------------------------------------------------------------------------------------- problem rows


def toy_problem_pool(count: int, seed: int) -> list[Problem]:
    """`count` generated toy problems as pool rows (ids p0, p1, ...), with their domain and level."""
    return [
        Problem(
            id=f"p{i}",
            problem=t.text,
            answer=str(t.answer),
            domain=t.domain,
            difficulty=str(t.level),
            source="toy",
            source_line=i + 1,
            source_format="plain",
        )
        for i, t in enumerate(generate_toy_problems(count, seed=seed))
    ]


def _jsonl_line(record: object) -> bytes:
    return json.dumps(record).encode("utf-8")


# (line content, reason fragment it is rejected with, or None when the line is a kept problem)
MALFORMED_JSONL_LINES: list[tuple[bytes, str | None]] = [
    (_jsonl_line({"problem": "What is 1+1?", "answer": "2"}), None),
    (b'{"problem": "What is 2+2?", "answer": }', "not valid JSON"),
    (b"[1, 2, 3]", "JSON array"),
    (_jsonl_line({"question_text": "What is 3+3?", "answer": "6"}), "problem field 'problem' is missing"),
    (_jsonl_line({"problem": "", "answer": "1"}), "problem field 'problem' is empty"),
    (_jsonl_line({"problem": " \n\t ", "answer": "1"}), "whitespace only"),
    (_jsonl_line({"problem": None, "answer": "1"}), "problem field 'problem' is null"),
    (_jsonl_line({"problem": 42, "answer": "1"}), "problem field 'problem' is not text"),
    (_jsonl_line({"problem": ["a", "list"], "answer": "1"}), "not text (a JSON array)"),
    (_jsonl_line({"problem": "Find x.", "solution": "x is three"}), "no \\boxed{} in solution"),
    (_jsonl_line({"problem": "Find y."}), "no answer"),
    (b"\xff\xfe\x00garbage\x80\x81", "not valid UTF-8"),
    (_jsonl_line({"problem": "Is 2 prime?", "answer": True}), "answer field 'answer' is a boolean"),
    (b'"just a string"', "JSON string"),
    (b"17", "JSON number"),
    (_jsonl_line({"problem": "Half of one?", "solution": "It is \\boxed{\\frac{1}{2}}."}), None),
    (_jsonl_line({"problem": "Miles?", "answer": 27.0}), None),
    (_jsonl_line({"problem": "Count?", "answer": 27}), None),
    # U+2028 inside a JSON string is legal and must not split the line.
    (json.dumps({"problem": "Line\u2028separator?", "answer": "A"}, ensure_ascii=False).encode(), None),
    (_jsonl_line({"problem": "Windows line ending?", "answer": "5"}) + b"\r", None),
]


def write_malformed_jsonl(path: Path) -> dict[int, str | None]:
    """Write MALFORMED_JSONL_LINES with a blank line after the first; return {line number: reason or None}."""
    lines: list[bytes] = []
    expected: dict[int, str | None] = {}
    for index, (content, reason) in enumerate(MALFORMED_JSONL_LINES):
        lines.append(content)
        expected[len(lines)] = reason
        if index == 0:
            lines.append(b"   ")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return expected


# ----------------------------------------------------------------------------------------------- evaluation


def eval_config(shared_data: Path | None, *overrides: str, registry_file: Path | None = None) -> RunConfig:
    """The tiny preset with short answers and a patient client (fake and tiny servers are slow on 2 CPUs)."""
    sets = [f"benchmarks.data_root={shared_data}"] if shared_data else []
    if registry_file is not None:
        sets.append(f"benchmarks.registry_files=[{json.dumps(str(registry_file))}]")
    sets += ["eval.max_tokens=64", "eval.concurrency=16", "eval.retries=8", "eval.request_timeout_s=60.0"]
    return load_config("tiny", [*sets, *overrides])


def mini_benchmark(
    folder: Path, items: int = 20, samples: int = 2, temperature: float = 0.6, name: str = "mini"
) -> Path:
    """Write `items` sum problems and a registry file declaring them as benchmark `name`; returns the registry."""
    data = folder / f"{name}.jsonl"
    rows = [
        {"id": f"{name}-{i}", "problem": f"What is {i} + {2 * i + 1}?", "answer": str(3 * i + 1)} for i in range(items)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    registry = folder / f"{name}-registry.yaml"
    registry.write_text(
        f"{name}:\n"
        f"  title: Mini sums\n"
        f"  path: {json.dumps(str(data))}\n"
        f"  format: plain\n"
        f"  items: {items}\n"
        f"  grading: math\n"
        f"  decoding: {{samples: {samples}, temperature: {temperature}}}\n",
        encoding="utf-8",
    )
    return registry


_MINI_SUM = re.compile(r"What is (\d+) \+ (\d+)\?")


def solve_sum(body: dict[str, Any]) -> list[str]:
    """A 'model' that solves the mini benchmark's sums (n completions)."""
    a, b = map(int, _MINI_SUM.search(body["messages"][-1]["content"]).groups())  # type: ignore[union-attr]
    return [f"{a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."] * body.get("n", 1)


def wrong_sum(body: dict[str, Any]) -> list[str]:
    return ["The answer is \\boxed{-1}."] * body.get("n", 1)


# ----------------------------------------------------------------------------------------------- model configs

# Qwen2.5-32B-Instruct's config.json, as published.
QWEN32_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "hidden_size": 5120,
    "intermediate_size": 27648,
    "max_position_embeddings": 32768,
    "model_type": "qwen2",
    "num_attention_heads": 40,
    "num_hidden_layers": 64,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "vocab_size": 152064,
}


# ----------------------------------------------------------------------------------------------- job records


def strong_filter_requests(run_dir: Path, after_ns: int) -> list[tuple[str, int]]:
    """(problem, attempt index) of every strong-filter request a process started after `after_ns` sent."""
    pairs = []
    for log in sorted((run_dir / "curate" / "strong_filter" / "requests").glob("*.jsonl")):
        if int(log.stem.rsplit("-", 1)[1]) < after_ns:
            continue
        for line in log.read_text().splitlines():
            row = json.loads(line)
            pairs += [(row["problem_id"], int(i)) for i in row["attempt_indices"]]
    return pairs


def registered_train_steps(train_dir: Path) -> list[int]:
    """Steps whose checkpoints Ray Train has registered (the ones a resumed run may start from)."""
    snapshot = train_dir / "ds_checkpoints" / "checkpoint_manager_snapshot.json"
    try:
        results = json.loads(snapshot.read_text())["checkpoint_results"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not yet written, or caught mid-write
        return []
    return [r["metrics"]["step"] for r in results if r["checkpoint_dir_name"].startswith("step_")]


def eval_samples(run_dir: Path) -> list[dict[str, Any]]:
    """The eval answers stored so far (only whole lines: the last may be half-written at the moment of a read)."""
    path = run_dir / "eval" / "samples.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


# ----------------------------------------------------------------------------------------------- clusters


@dataclass(frozen=True)
class NodeLoss:
    what: str
    node_id: str


class LocalCluster:
    """Ray's multi-node test cluster on this machine: a head with no CPUs (as on KubeRay) and one worker node of
    `cpus_per_node` CPUs per entry of `node_resources` (the custom resources that node declares, as a node pool's
    nodes would), each its own raylet and object store. Its processes are stopped by this handle. `lose_node_of`
    removes the node holding an actor abruptly and adds a fresh node of the same pool, as an autoscaler replacing
    a lost instance would."""

    def __init__(
        self, node_resources: Sequence[Mapping[str, float]], cpus_per_node: int, object_store_mib: int = 256
    ) -> None:
        self.node_resources, self.cpus_per_node = list(node_resources), cpus_per_node
        self.object_store = object_store_mib * 2**20
        # Every node ever added (lost ones included) -> the custom resources it declared.
        self.resources_of: dict[str, dict[str, float]] = {}
        self.cluster: Any = None

    def __enter__(self) -> LocalCluster:
        import ray
        from ray.cluster_utils import Cluster

        if ray.is_initialized():
            ray.shutdown()
        # A lost node is declared dead after about 3 s instead of Ray's default of about 15-30 s.
        fast_health = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 0,
                "object_store_memory": self.object_store,
                "include_dashboard": False,
                "_system_config": fast_health,
            },
        )
        try:
            for resources in self.node_resources:
                self._add_node(resources)
            self.cluster.wait_for_nodes()
            # This process also connects, to look up where actors run (the cluster has no dashboard to ask).
            ray.init(address=self.cluster.address, logging_level="ERROR", log_to_driver=False)
        except BaseException:
            self.cluster.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()

    @property
    def address(self) -> str:
        return self.cluster.address

    def _add_node(self, resources: Mapping[str, float]) -> None:
        node = self.cluster.add_node(
            num_cpus=self.cpus_per_node, object_store_memory=self.object_store, resources=dict(resources)
        )
        self.resources_of[node.node_id] = dict(resources)

    def nodes_with(self, resource: str) -> set[str]:
        """Every node (lost ones included) that declared `resource`."""
        return {node for node, resources in self.resources_of.items() if resource in resources}

    def node_of(self, class_prefix: str, timeout_s: float = 300) -> str:
        """The node id of a live actor whose class name starts with `class_prefix`."""
        import time

        from ray._private.state import state  # the GCS actor table; the public state API needs a dashboard

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for actor in state.actor_table(None).values():
                if actor["ActorClassName"].startswith(class_prefix) and actor["State"] == "ALIVE":
                    return actor["Address"]["NodeID"]
            time.sleep(0.2)
        raise AssertionError(f"no live {class_prefix} actor within {timeout_s} s")

    def lose_node_of(self, what: str, class_prefix: str) -> NodeLoss:
        node_id = self.node_of(class_prefix)
        [node] = [n for n in self.cluster.worker_nodes if n.node_id == node_id]
        self.cluster.remove_node(node, allow_graceful=False)
        self._add_node(self.resources_of[node_id])
        return NodeLoss(what, node_id)
