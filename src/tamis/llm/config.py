"""Config kinds of the LLM domain: finetune, evaluate, sensitivity, merge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tamis.core.config import param, register_config
from tamis.llm.merging.sens import LAYER_NORMS, TAU_TRANSFORMS

__all__ = [
    "EvaluateConfig",
    "FinetuneConfig",
    "MergeConfig",
    "MergeModel",
    "MergeParameters",
    "SensitivityConfig",
    "TaskSpec",
]

TASK_NAMES = ("gsm8k", "mmlu", "sst2", "jsonl")
METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties")


@dataclass
class TaskSpec:
    """A task's data file and the slice of it to use."""

    name: str = param(
        help="task reader: gsm8k, mmlu, sst2 or jsonl", choices=TASK_NAMES
    )
    path: Path = param(help="data file (MMLU: a csv or a folder of csv files)")
    start: int = param(0, "index of the first example used", ge=0)
    limit: int | None = param(None, "number of examples used (null: all)", ge=1)


@register_config("llm-finetune", runner="tamis.llm.finetune:run_finetune")
@dataclass
class FinetuneConfig:
    """Full or LoRA fine-tuning of a causal LM on one task -> an expert directory."""

    model: str = param(help="base model directory, or 'smollm2' for the packaged one")
    task: TaskSpec = param(help="training data")
    output: Path = param(help="expert model directory written at the end")
    method: str = param("lora", "full or lora", choices=("full", "lora"))
    steps: int = param(100, "optimizer steps", ge=1)
    batch_size: int = param(4, "sequences per step", ge=1)
    max_length: int = param(256, "tokens per sequence (prompt cut first)", ge=8)
    lr: float = param(2e-4, "peak learning rate of AdamW", gt=0)
    weight_decay: float = param(0.0, "AdamW weight decay", ge=0)
    warmup_steps: int = param(10, "linear warm-up steps, then cosine decay", ge=0)
    grad_clip: float = param(1.0, "gradient-norm clip (0: off)", ge=0)
    lora_r: int = param(8, "LoRA rank", ge=1)
    lora_alpha: float = param(16.0, "LoRA scale numerator (scale = alpha / r)", gt=0)
    lora_dropout: float = param(0.0, "dropout on the LoRA input", ge=0, lt=1)
    lora_targets: list[str] = param(
        help="module names that get LoRA adapters",
        factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    )
    checkpoint_every: int = param(50, "steps between checkpoints", ge=1)
    log_every: int = param(10, "steps between metric lines", ge=1)
    seed: int = param(0, "random seed")
    runs_root: Path = param(Path("runs/llm"), "parent folder of run directories")


@register_config("llm-evaluate", runner="tamis.llm.evaluate:run_evaluate")
@dataclass
class EvaluateConfig:
    """Accuracy of one model on several tasks."""

    model: str = param(help="model directory, or 'smollm2'")
    tasks: list[TaskSpec] = param(help="tasks to score", factory=list)
    batch_size: int = param(8, "sequences per forward pass", ge=1)
    max_new_tokens: int = param(64, "generation budget of generative tasks", ge=1)
    seed: int = param(0, "random seed")
    runs_root: Path = param(Path("runs/llm"), "parent folder of run directories")

    def validate(self) -> None:
        if not self.tasks:
            raise ValueError("tasks: at least one task is needed")


@register_config("llm-sensitivity", runner="tamis.llm.sensitivity:run_sensitivity")
@dataclass
class SensitivityConfig:
    """Sens-Merging's measuring pass -> a per-layer coefficients file."""

    output: Path = param(help="coefficients JSON file to write")

    experts: list[str] = param(
        help="expert model directories, in merge order", factory=list
    )
    calibration: list[TaskSpec] = param(
        help="one calibration task per expert, same order", factory=list
    )
    base_model: str | None = param(
        None, "base directory (needed for sensitivity_on=delta)"
    )
    num_samples: int = param(64, "calibration samples per task", ge=1)
    sensitivity_on: str = param(
        "theta", "|w * grad| with w = theta or delta", choices=("theta", "delta")
    )
    layer_norm: str = param(
        "l2", "normalisation of sensitivities over layers", choices=LAYER_NORMS
    )
    tau_transform: str = param(
        "inv", "map from logit distance to tau", choices=TAU_TRANSFORMS
    )
    temperature: float = param(2.0, "softmax temperature T", gt=0)
    use_alpha: bool = param(True, "task-specific (layer sensitivity) scaling on")
    use_tau: bool = param(True, "cross-task (logit alignment) scaling on")
    max_length: int = param(256, "tokens per calibration sample", ge=8)
    seed: int = param(0, "random seed")
    runs_root: Path = param(Path("runs/llm"), "parent folder of run directories")

    def validate(self) -> None:
        if len(self.experts) < 2:
            raise ValueError("experts: at least two experts are needed")
        if len(self.calibration) != len(self.experts):
            raise ValueError(
                f"calibration: {len(self.calibration)} tasks for "
                f"{len(self.experts)} experts; give one per expert"
            )
        if self.sensitivity_on == "delta" and self.base_model is None:
            raise ValueError("base_model: required when sensitivity_on is delta")


@dataclass
class MergeModel:
    """One input model of a merge and its own parameters."""

    model: str = param(help="model directory")
    weight: float = param(1.0, "weight w_i of the model")
    density: float | None = param(None, "TIES density for this model", ge=0, le=1)
    drop_rate: float | None = param(None, "DARE drop rate for this model", ge=0, lt=1)


@dataclass
class MergeParameters:
    """Method parameters shared by all models (per-model values override)."""

    scaling: float = param(1.0, "lambda: scale of the merged task vector")
    density: float = param(
        1.0, "TIES: fraction of task-vector entries kept", ge=0, le=1
    )
    drop_rate: float = param(
        0.0, "DARE: probability p of dropping an entry", ge=0, lt=1
    )
    normalize: bool = param(True, "linear: divide by the sum of weights")
    seed: int = param(0, "DARE: seed of the drop masks")


@register_config("llm-merge", runner="tamis.llm.merge:run_merge_config")
@dataclass
class MergeConfig:
    """A merge: base model, experts, method, parameters, output."""

    method: str = param(help="merge method", choices=METHODS)
    output: Path = param(help="output model directory")
    models: list[MergeModel] = param(help="expert (or soup) models", factory=list)
    base_model: str | None = param(None, "base model directory (all but linear)")
    parameters: MergeParameters = param(
        help="method parameters", factory=MergeParameters
    )
    coefficients: Path | None = param(None, "Sens-Merging coefficients file (optional)")
    dtype: str | None = param(
        None,
        "output dtype (null: as the inputs)",
        choices=(None, "float32", "float16", "bfloat16"),
    )
    chunk_numel: int = param(
        1 << 24, "tensors above this many elements are merged in row blocks", ge=1
    )
    block_numel: int = param(1 << 22, "elements per row block of a big tensor", ge=1)
    max_shard_mb: int = param(2048, "largest output shard, MiB", ge=1)
    compile: bool | Literal["auto"] = param(
        "auto",
        "TIES kernels, all giving the same bytes: auto (C, built once with the "
        "system C compiler, where that works; else eager), true (C, else "
        "torch.compile), false (eager torch)",
    )
    flush_mb: int = param(
        128,
        "flush the output to disk in the background after this many MiB "
        "(0: only at the end)",
        ge=0,
    )
    copy_tokenizer: bool = param(True, "copy config and tokenizer files")
    overwrite: bool = param(False, "replace an existing output directory")

    def validate(self) -> None:
        if not self.models:
            raise ValueError("models: at least one model is needed")
        if self.method != "linear" and self.base_model is None:
            raise ValueError(f"base_model: required by method {self.method!r}")
