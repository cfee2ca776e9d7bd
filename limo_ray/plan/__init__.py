"""`limo plan`: what a run will ask of the cluster, and what it will cost, before anything starts.

Why: the expensive mistakes happen before the first token: a tensor-parallel group bigger than the cluster, a
model that does not fit its GPUs, a fine-tune that OOMs at step one, or a strong filter that needs ten times the
GPU-hours budgeted. The plan is arithmetic on the run config, `EngineSpec` (GPUs and placement-group bundles
per engine), the training memory estimator (`limo_ray.train.memory`) and stated `Assumptions`; every assumption
is printed with the plan, so a number can be traced and argued with.

Per stage:
- GPUs and actors: an engine occupies `tensor_parallel_size x pipeline_parallel_size` GPUs (its bundles); a
  curate stage runs as many engine replicas as fit the cluster (groups no larger than a node pack per node);
  training asks for `train.num_workers` GPUs; evaluation serves up to `serve.max_replicas` replicas.
- Problems and tokens: pool -> dedup -> decontamination -> weak filter -> strong filter -> balance -> chains
  -> select, each step keeping a stated survival fraction. Tokens = problems x generations per problem x the
  expected response length (stated per stage, or per model, and never more than the stage's `max_tokens`).
  The weak filter samples in rounds and stops a problem at its first success; the strong filter stops a problem
  once it passes the band's top (`strong_early_stop` of them after the first round).
- Time and cost: decode tokens/s per GPU by model size, training tokens/s per GPU from FLOPs (8 x params per
  token with gradient checkpointing, plus attention) at a stated MFU; wall time = tokens / (tokens/s x GPUs);
  GPU-hours = wall time x the GPUs the stage asks for (each stage is its own right-sized job, see
  cluster/kuberay/); cost = GPU-hours x `cluster.gpu_hour_usd`.
Refused (LimoError): an engine whose TP x PP group is larger than the cluster, an engine whose weights plus one
full-length sequence's KV cache do not fit its GPUs, and a fine-tune that does not fit (with the numbers).

The numbers (`estimate`, with `engines` and `assumptions`) are kept apart from the text (`render`).
"""

from limo_ray.plan.assumptions import DEFAULT_POOL_SIZE, Assumptions
from limo_ray.plan.engines import EngineAsk
from limo_ray.plan.estimate import Plan, StagePlan, make_plan
from limo_ray.plan.render import format_plan

__all__ = ["DEFAULT_POOL_SIZE", "Assumptions", "EngineAsk", "Plan", "StagePlan", "format_plan", "make_plan"]
