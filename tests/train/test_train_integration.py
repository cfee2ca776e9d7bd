"""ZeRO-3 training on 2 Ray workers (gloo, CPU): loss, exactness, export, serving, resume. One Ray cluster per module.

The uninterrupted run is trained once (module fixture) and is the reference of the resume test too. Its 15
packed rows per epoch make, at a global batch of 8 (2 per micro-batch x 2 accumulation x 2 workers), one full
step and one smaller last step of 7 rows spread over the 4 micro-batches: accumulation and the epoch's tail are
both in every test below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from limo_ray.config import LIMO_SYSTEM_PROMPT, RunConfig, load_config
from limo_ray.errors import LimoError
from limo_ray.runfolder import read_resolved_config
from limo_ray.train import run_training
from limo_ray.train.checkpoint import PROBE_FILE, STATE_FILE, files_for_rank
from limo_ray.train.data import (
    TokenizedData,
    TokenizeSettings,
    load_tokenizer,
    read_dataset,
    tokenize_dataset,
    tokenize_row,
)
from limo_ray.train.layout import plan_steps
from limo_ray.train.metrics import progress_line
from limo_ray.train.packing import collate, epoch_rows, step_plan, token_loss_sum
from limo_ray.train.run import training_key
from limo_ray.train.schedule import lr_multiplier
from tests.fixtures import limo_rows, write_jsonl

pytestmark = pytest.mark.integration

OVERRIDES = [
    "train.precision=fp32",  # exactness checks need fp32
    "train.epochs=4",
    "train.micro_batch_size=2",
    "train.global_batch_size=8",  # 2 micro-batches per worker per step
    "train.learning_rate=3.0e-3",
    "train.checkpoint_every_steps=2",
]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from limo_ray.engine import init_ray

    init_ray(load_config("tiny").cluster, num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def config(scratch: Path) -> RunConfig:
    return load_config("tiny", [*OVERRIDES, f"train.scratch_dir={scratch}"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(limo_rows(32, seed=3), tmp_path_factory.mktemp("data") / "dataset.jsonl")


@pytest.fixture(scope="module")
def progress_lines() -> list[str]:
    """What the straight run's driver said while its workers trained."""
    return []


@pytest.fixture(scope="module")
def trained(
    ray_cluster,
    config: RunConfig,
    dataset: Path,
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    progress_lines: list[str],
):
    run_dir = tmp_path_factory.mktemp("runs") / "straight"
    return run_training(config, run_dir, dataset, str(tiny_model), progress=progress_lines.append)


def _losses(metrics_path: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in metrics_path.read_text().splitlines()]


def test_zero3_on_two_workers_trains_and_the_loss_falls(trained, report) -> None:
    rows = [json.loads(line) for line in trained.metrics_path.read_text().splitlines()]
    assert trained.complete and trained.steps == trained.total_steps == len(rows) == 8
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert {"step", "epoch", "loss", "lr", "tokens_per_s"} <= set(rows[0])
    losses = [r["loss"] for r in rows]
    report(f"loss by step: {', '.join(f'{x:.3f}' for x in losses)}")
    assert losses[-1] < 0.8 * losses[0]
    manifest = json.loads((trained.run_dir / "train" / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["rows_out"] == 32
    assert (manifest["extra"]["steps_per_epoch"], manifest["extra"]["gradient_accumulation_steps"]) == (2, 2)


def test_the_driver_reports_every_step_once_and_in_order(trained, progress_lines) -> None:
    """That it reports while the body runs, not only at its end, is `following`'s unit test (tests/train/
    test_run_status.py): how many steps land in one 2 s look depends on this machine's speed."""
    rows = [json.loads(line) for line in trained.metrics_path.read_text().splitlines()]
    assert progress_lines == [progress_line(row, trained.total_steps) for row in rows]
    assert progress_lines[-1].startswith(f"[train] step {trained.total_steps}/{trained.total_steps}, loss ")


def test_checkpoints_are_staged_in_scratch_and_the_export_renamed_into_place(trained, scratch: Path) -> None:
    assert list(scratch.iterdir()) == []  # every rank's staged shards deleted once uploaded, the export too
    storage = trained.run_dir / "train" / "ds_checkpoints"
    assert not (storage / "hf_export").exists()  # renamed into train/checkpoint, not copied
    assert (trained.checkpoint / "model.safetensors").is_file() and not (trained.checkpoint / STATE_FILE).exists()


def test_two_worker_zero3_steps_equal_one_process_on_the_global_batch(
    trained, config, dataset, tiny_model, report
) -> None:
    """DeepSpeed's mean over ranks and accumulation, undone by our scale, must give the global token mean."""
    reference = _single_process_losses(config, dataset, tiny_model, steps=4)
    measured = _losses(trained.metrics_path)[:4]
    diff = max(abs(a - b) for a, b in zip(measured, reference, strict=True))
    report(f"ZeRO-3 x 2 workers vs one process, first 4 steps: max loss diff {diff:.1e}")
    assert diff < 1e-5


def test_consolidated_checkpoint_reloads_with_the_trained_models_logits(trained, report) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = trained.checkpoint
    assert (folder / "model.safetensors").is_file() and (folder / "generation_config.json").is_file()
    assert AutoTokenizer.from_pretrained(folder).chat_template
    probe = load_file(str(trained.run_dir / "train" / PROBE_FILE))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        logits = model(input_ids=probe["input_ids"].long()).logits
    diff = float((logits - probe["logits"]).abs().max())
    report(f"export vs trained model: max abs logit diff {diff:.2e}")
    assert diff < 1e-5


def test_consolidated_checkpoint_is_served_by_vllm(trained) -> None:
    script = textwrap.dedent(
        """
        import sys
        from vllm import LLM, SamplingParams
        if __name__ == "__main__":
            llm = LLM(model=sys.argv[1], enforce_eager=True, dtype="float32", max_model_len=512, seed=0)
            out = llm.generate(["<|im_start|>user\\nWhat is 2 + 3?<|im_end|>\\n<|im_start|>assistant\\n"],
                               SamplingParams(max_tokens=8, temperature=0.0))
            print("GENERATED", len(out[0].outputs[0].token_ids))
        """
    )
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(trained.checkpoint)], capture_output=True, text=True, env=env, timeout=300
    )
    assert "GENERATED" in done.stdout, done.stderr[-3000:]
    assert int(done.stdout.split("GENERATED")[1].split()[0]) > 0


def test_resume_after_a_crash_ends_where_the_uninterrupted_run_ends(
    trained, config, dataset, tiny_model, tmp_path: Path, report
) -> None:
    run_dir = tmp_path / "crashed"
    # Checkpoints at steps 2 and 4; the crash after step 5 loses step 5, which the resumed run redoes.
    with pytest.raises(LimoError, match="resume"):
        run_training(config, run_dir, dataset, str(tiny_model), fail_at_step=5)
    # Each rank would fetch only its own partitions from remote storage: checked on DeepSpeed's real file names.
    step_4 = run_dir / "train" / "ds_checkpoints" / "step_000004"
    names = [str(p.relative_to(step_4)) for p in step_4.rglob("*") if p.is_file()]
    for rank, other in ((0, 1), (1, 0)):
        mine = files_for_rank(names, rank)
        assert sum(f"zero_pp_rank_{rank}_" in n for n in mine) == 2  # model + optimizer states
        assert not any(f"zero_pp_rank_{other}_" in n for n in mine) and STATE_FILE in mine
    resumed = run_training(config, run_dir, dataset, str(tiny_model))
    assert resumed.complete and resumed.resumed_from_step == 4
    steps = [json.loads(line)["step"] for line in resumed.metrics_path.read_text().splitlines()]
    assert steps == list(range(1, 9))  # nothing lost, nothing logged twice
    diff = abs(resumed.final_loss - trained.final_loss)
    report(
        f"resumed vs uninterrupted final loss: {resumed.final_loss:.9f} vs {trained.final_loss:.9f}, diff {diff:.1e}"
    )
    assert diff < 1e-6


def test_a_complete_run_is_not_redone(trained, config, dataset, tiny_model) -> None:
    again = run_training(config, trained.run_dir, dataset, str(tiny_model))
    assert again.skipped and again.checkpoint == trained.checkpoint and again.final_loss == trained.final_loss


def test_settings_training_does_not_read_leave_a_finished_training_alone_and_others_are_refused_by_name(
    trained, config, dataset, tiny_model, tmp_path: Path
) -> None:
    manifest = (trained.run_dir / "train" / "manifest.json").read_text()
    other_eval = load_config(
        "tiny", [*OVERRIDES, f"train.scratch_dir={config.train.scratch_dir}", "eval.concurrency=3"]
    )
    again = run_training(other_eval, trained.run_dir, dataset, str(tiny_model))
    assert again.skipped and again.checkpoint == trained.checkpoint
    assert (trained.run_dir / "train" / "manifest.json").read_text() == manifest
    assert read_resolved_config(trained.run_dir).eval.concurrency == 3  # the folder records the latest config
    other_lr = load_config(
        "tiny", [*OVERRIDES, f"train.scratch_dir={config.train.scratch_dir}", "train.learning_rate=1e-3"]
    )
    with pytest.raises(LimoError, match=r"other settings \(changed: train.learning_rate\)"):
        run_training(other_lr, trained.run_dir, dataset, str(tiny_model))
    edited = write_jsonl(limo_rows(32, seed=4), tmp_path / "dataset.jsonl")  # same path, other content
    with pytest.raises(LimoError, match=r"changed: dataset_sha256"):
        run_training(config, trained.run_dir, edited, str(tiny_model))


def test_a_run_killed_after_the_export_moved_only_writes_the_manifest(
    trained, config, dataset, tiny_model, tmp_path: Path
) -> None:
    """Killed between the rename and the manifest: Ray Train's latest checkpoint names a folder that has moved.
    The re-run finds the export in place (its state file is removed last) and never starts Ray Train."""
    run_dir = tmp_path / "moved"
    shutil.copytree(trained.run_dir, run_dir)
    (run_dir / "train" / "manifest.json").unlink()
    key = training_key(config, dataset, str(tiny_model))
    state = {"kind": "hf_export", "step": 8, "total_steps": 8, "world_size": 2, "config_hash": key}
    (run_dir / "train" / "checkpoint" / STATE_FILE).write_text(json.dumps(state))
    snapshot = run_dir / "train" / "ds_checkpoints" / "checkpoint_manager_snapshot.json"
    before = snapshot.read_text()
    again = run_training(config, run_dir, dataset, str(tiny_model))
    assert again.complete and not again.skipped and again.checkpoint == run_dir / "train" / "checkpoint"
    assert again.final_loss == trained.final_loss and snapshot.read_text() == before  # no training ran
    assert json.loads((run_dir / "train" / "manifest.json").read_text())["complete"] is True
    assert not (again.checkpoint / STATE_FILE).exists()


def test_tokenisation_as_a_ray_data_step_counts_what_it_drops(ray_cluster, dataset, tiny_model) -> None:
    data = tokenize_dataset(read_dataset(dataset), TokenizeSettings(str(tiny_model), LIMO_SYSTEM_PROMPT, 200, "drop"))
    tokenizer = load_tokenizer(str(tiny_model))
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    direct = TokenizedData.from_rows([tokenize_row(tokenizer, r, LIMO_SYSTEM_PROMPT, 200, "drop") for r in rows])
    assert data.stats.rows_in == 32 and 0 < data.stats.rows_dropped < 32
    assert (data.stats.rows_dropped, data.ids) == (direct.stats.rows_dropped, direct.ids)
    assert data.input_ids.tolist() == direct.input_ids.tolist()


def _single_process_losses(config: RunConfig, dataset: Path, tiny_model: Path, steps: int) -> list[float]:
    """The same steps in one process with plain torch: the whole global batch, token-mean loss, AdamW, clipping."""
    from transformers import AutoModelForCausalLM

    train, world = config.train, config.train.num_workers
    tokenizer = load_tokenizer(str(tiny_model))
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    data = TokenizedData.from_rows(
        [tokenize_row(tokenizer, r, LIMO_SYSTEM_PROMPT, train.max_seq_len, train.truncation) for r in rows]
    )
    _, per_epoch = plan_steps(data.lengths.tolist(), train, world)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32, attn_implementation="sdpa")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and not n.endswith(".bias")]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and not n.endswith(".bias"))]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=train.learning_rate,
    )
    factor = lr_multiplier(train.lr_scheduler, per_epoch * train.epochs, train.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    losses = []
    for step in range(steps):
        epoch, index = divmod(step, per_epoch)
        plan = step_plan(
            epoch_rows(data.lengths.tolist(), train.packing, train.max_seq_len, config.seed, epoch),
            train.micro_batch_size,
            train.gradient_accumulation_steps,
            world,
        )[index]
        batches = [collate(data, mb, "rows", tokenizer.pad_token_id) for per_rank in plan for mb in per_rank]
        targets = sum(b.num_targets for b in batches)
        total = 0.0
        for batch in batches:
            loss_sum = token_loss_sum(model(**batch.model_inputs()).logits, batch.targets)
            (loss_sum / targets).backward()
            total += float(loss_sum.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(total / targets)
    return losses
