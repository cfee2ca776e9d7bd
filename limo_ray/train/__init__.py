"""SFT on Ray Train with DeepSpeed: tokenise + mask + pack, the DeepSpeed config, the loop, checkpoints, HF export."""

from limo_ray.train.data import IGNORE_INDEX, TokenizedData, TokenStats, encode_sample, tokenize_dataset
from limo_ray.train.deepspeed_config import build_deepspeed_config, resolve_attention
from limo_ray.train.layout import describe_training_layout, format_training_layout
from limo_ray.train.packing import collate, pack_best_fit, step_plan, token_loss_sum
from limo_ray.train.run import TrainResult, run_training

__all__ = [
    "IGNORE_INDEX",
    "TokenStats",
    "TokenizedData",
    "TrainResult",
    "build_deepspeed_config",
    "collate",
    "describe_training_layout",
    "encode_sample",
    "format_training_layout",
    "pack_best_fit",
    "resolve_attention",
    "run_training",
    "step_plan",
    "token_loss_sum",
    "tokenize_dataset",
]
