"""Task data and scoring: GSM8K, MMLU, SST-2 and OffensEval as instructions, JSONL.

Every task is a list of :class:`Example` (prompt, training target, gold answer,
optional choices) plus a metric:

- ``exact_number``: the final number of a greedy generation equals the gold
  number (GSM8K; the number after ``####``, else the last number);
- ``choice``: the choice with the highest log-likelihood after the prompt is the
  gold one (MMLU letters, SST-2 and OffensEval labels); when every choice is
  one token a single forward pass over the prompt scores all of them;
- ``exact_match``: the first line of a greedy generation equals the gold answer
  after SQuAD-style normalisation (JSONL prompt/completion pairs).
"""

from __future__ import annotations

import csv
import inspect
import json
import logging
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tamis.core.progress import progress
from tamis.core.registry import Registry

__all__ = [
    "TASKS",
    "Example",
    "Task",
    "answer_loss",
    "choice_logprobs",
    "completion_logprobs",
    "encode_pair",
    "evaluate_task",
    "final_number",
    "generate",
    "load_task",
    "normalize_answer",
    "pad_batch",
    "target_token_stats",
]

log = logging.getLogger(__name__)
METRICS = ("exact_number", "choice", "exact_match")


@dataclass(frozen=True)
class Example:
    """One prompt with its training target and gold answer.

    Attributes:
        prompt: Text given to the model.
        target: Completion used for training and likelihoods.
        answer: Gold answer the metric compares with.
        choices: Candidate completions for ``choice`` tasks.
        label: Index of the gold choice.
    """

    prompt: str
    target: str
    answer: str
    choices: tuple[str, ...] = ()
    label: int = -1


@dataclass
class Task:
    """A named list of examples with the metric that scores them."""

    name: str
    metric: str
    examples: list[Example]

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric: got {self.metric!r}, expected one of {METRICS}")

    def subset(self, start: int, stop: int | None) -> Task:
        """Examples ``[start, stop)`` as a new task."""
        return Task(self.name, self.metric, self.examples[start:stop])


TASKS: Registry[Callable[[Path], Task]] = Registry("task")


# Readers.


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            rows.append((lineno, row))
    return rows


def _require(path: Path, lineno: int, row: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if not isinstance(row.get(key), str):
            raise ValueError(f"{path}:{lineno}: field {key!r} missing or not a string")


_CALC = re.compile(r"<<[^>]*>>")


@TASKS.register("gsm8k", "GSM8K", paper="arXiv:2110.14168")
def load_gsm8k(path: Path) -> Task:
    """GSM8K JSONL (``question``, ``answer`` ending in ``#### n``)."""
    examples = []
    for lineno, row in _read_jsonl(Path(path)):
        _require(path, lineno, row, "question", "answer")
        if "####" not in row["answer"]:
            raise ValueError(f"{path}:{lineno}: answer has no '#### <number>'")
        solution = _CALC.sub("", row["answer"]).strip()
        gold = row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        prompt = f"Question: {row['question'].strip()}\nAnswer:"
        examples.append(Example(prompt, " " + solution, gold))
    return Task("gsm8k", "exact_number", examples)


SST2_CHOICES = (" negative", " positive")
OFFENSEVAL_CHOICES = (" no", " yes")


def _read_label_tsv(path: Path) -> list[tuple[str, int]]:
    """Rows of a ``sentence<TAB>label`` TSV (optional header, labels 0/1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if lineno == 1 and parts[-1].strip() == "label":
                continue
            # Some releases pad the label with spaces (" 0"); the text is kept as is.
            if len(parts) != 2 or parts[1].strip() not in {"0", "1"}:
                raise ValueError(
                    f"{path}:{lineno}: expected 'sentence<TAB>0|1', got {line[:60]!r}"
                )
            rows.append((parts[0].strip(), int(parts[1])))
    return rows


def _label_examples(
    rows: list[tuple[str, int]], question: str, field: str, choices: tuple[str, ...]
) -> list[Example]:
    examples = []
    for text, label in rows:
        prompt = f"{question}\n{field}: {text}\nAnswer:"
        target = choices[label]
        examples.append(Example(prompt, target, target.strip(), choices, label))
    return examples


@TASKS.register("sst2", "SST-2 as an instruction", paper="Socher et al. 2013")
def load_sst2(path: Path) -> Task:
    """SST-2 TSV (``sentence<TAB>label`` with a header) posed as an instruction."""
    question = "Is the sentiment of this sentence positive or negative?"
    rows = _read_label_tsv(path)
    return Task(
        "sst2", "choice", _label_examples(rows, question, "Sentence", SST2_CHOICES)
    )


@TASKS.register(
    "offenseval",
    "OffensEval offensive language as an instruction",
    paper="arXiv:1903.08983",
)
def load_offenseval(path: Path) -> Task:
    """OffensEval TSV (``tweet<TAB>label``, 1 = offensive) as a yes/no question."""
    question = "Is this tweet offensive? Answer yes or no."
    rows = _read_label_tsv(path)
    examples = _label_examples(rows, question, "Tweet", OFFENSEVAL_CHOICES)
    return Task("offenseval", "choice", examples)


MMLU_LETTERS = (" A", " B", " C", " D")


@TASKS.register("mmlu", "MMLU", paper="arXiv:2009.03300")
def load_mmlu(path: Path) -> Task:
    """MMLU CSV(s) (``question,choice0..choice3,answer``); a folder reads all."""
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise FileNotFoundError(f"{path}: no MMLU csv file")
    examples = []
    for f in files:
        with open(f, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            for lineno, row in enumerate(reader, 1):
                if lineno == 1 and row and row[0] == "question":
                    continue
                if len(row) != 6 or row[5].strip() not in {"0", "1", "2", "3"}:
                    raise ValueError(
                        f"{f}:{lineno}: expected question, 4 choices, answer 0-3"
                    )
                label = int(row[5])
                options = "\n".join(
                    f"{letter.strip()}. {text}"
                    for letter, text in zip(MMLU_LETTERS, row[1:5], strict=True)
                )
                prompt = f"{row[0].strip()}\n{options}\nAnswer:"
                target = MMLU_LETTERS[label]
                examples.append(
                    Example(prompt, target, target.strip(), MMLU_LETTERS, label)
                )
    return Task("mmlu", "choice", examples)


END_MARKERS = ("<|endoftext|>", "</s>")


@TASKS.register("jsonl", "prompt/completion pairs")
def load_jsonl_pairs(path: Path) -> Task:
    """JSONL with ``prompt`` and ``completion`` fields, scored by exact match."""
    examples = []
    for lineno, row in _read_jsonl(Path(path)):
        _require(path, lineno, row, "prompt", "completion")
        completion = row["completion"]
        for marker in END_MARKERS:
            completion = completion.removesuffix(marker)
        target = completion if completion[:1].isspace() else " " + completion
        examples.append(Example(row["prompt"], target, completion.strip()))
    return Task(Path(path).stem, "exact_match", examples)


def load_task(name: str, path: str | Path, limit: int | None = None) -> Task:
    """Load a registered task from ``path``, keeping the first ``limit`` examples.

    Raises:
        KeyError: If ``name`` is not a registered task.
        ValueError: If the file holds no examples.
    """
    task = TASKS.get(name)(Path(path))
    if not task.examples:
        raise ValueError(f"{path}: no examples")
    if limit is not None:
        task.examples = task.examples[:limit]
    return task


# Scoring (pure).

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def final_number(text: str) -> str | None:
    """The number after ``####`` if present, else the last number in ``text``."""
    if "####" in text:
        text = text.split("####", 1)[1]
        found = _NUMBER.findall(text)
        number = found[0] if found else None
    else:
        found = _NUMBER.findall(text)
        number = found[-1] if found else None
    if number is None:
        return None
    number = number.replace(",", "")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation/articles/extra space."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def is_correct(metric: str, prediction: str, answer: str) -> bool:
    """Whether a generated ``prediction`` matches the gold ``answer``."""
    if metric == "exact_number":
        return final_number(prediction) == final_number(answer)
    if metric == "exact_match":
        first = prediction.strip().split("\n", 1)[0]
        return normalize_answer(first) == normalize_answer(answer)
    raise ValueError(f"metric {metric!r} does not score generations")


# Model-side helpers.


def encode_pair(
    tokenizer: Any, prompt: str, target: str, max_length: int, add_eos: bool = True
) -> tuple[list[int], list[int]]:
    """Token ids of prompt + target and labels (-100 on the prompt).

    A too long pair loses the start of its prompt first, then the end of its
    target.
    """
    p = tokenizer.encode(prompt)
    t = tokenizer.encode(target) + ([tokenizer.eos_token_id] if add_eos else [])
    t = t[:max_length]
    p = p[max(0, len(p) + len(t) - max_length) :]
    return p + t, [-100] * len(p) + t


def pad_batch(
    sequences: Sequence[tuple[list[int], list[int]]], pad_id: int, left: bool = False
) -> dict[str, torch.Tensor]:
    """Pad (ids, labels) pairs into ``input_ids``, ``attention_mask``, ``labels``."""
    width = max(len(ids) for ids, _ in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), width), -100, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(sequences):
        sl = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[row, sl] = torch.tensor(ids)
        labels[row, sl] = torch.tensor(lab)
        mask[row, sl] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def _tail_logits(model: Any, batch: dict[str, torch.Tensor], keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` positions of a left-padded batch.

    Position ids count real tokens only, so a left-padded row sees the same
    positions as the unpadded sequence. Skipping the vocabulary projection of
    the other positions saves most of the head's cost on long prompts.
    """
    mask = batch["attention_mask"]
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L)
    kwargs: dict[str, Any] = {}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = keep
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=mask,
        position_ids=position_ids,
        **kwargs,
    ).logits
    return logits[:, -keep:]  # (B, keep, V)


def _token_stats(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per row: sum of log p(label_t | prefix), labelled tokens, argmax hits.

    ``batch`` is left-padded, so every row's labels end at the last column.

    Returns:
        (B, 3) float64.
    """
    labels = batch["labels"]  # (B, L)
    width = labels.shape[1]
    labelled = (labels != -100).any(0).nonzero()
    if len(labelled) == 0:
        return torch.zeros((labels.shape[0], 3), dtype=torch.float64)
    keep = min(width, width - int(labelled[0]) + 1)
    logits = _tail_logits(model, batch, keep)[:, :-1].float()  # (B, keep-1, V)
    targets = labels[:, width - keep + 1 :]  # (B, keep-1)
    valid = targets != -100
    safe = targets.clamp(min=0).unsqueeze(-1)
    picked = logits.gather(-1, safe).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    hits = (logits.argmax(-1) == targets) & valid
    return torch.stack(
        [(picked * valid).sum(-1), valid.sum(-1), hits.sum(-1)], dim=-1
    ).double()


def _batches(
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    batch_size: int,
    max_length: int,
    add_eos: bool,
    device: Any,
) -> Any:
    for i in range(0, len(pairs), batch_size):
        chunk = [
            encode_pair(tokenizer, p, c, max_length, add_eos=add_eos)
            for p, c in pairs[i : i + batch_size]
        ]
        batch = pad_batch(chunk, tokenizer.pad_token_id, left=True)
        yield {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def completion_logprobs(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 8,
    max_length: int = 512,
) -> torch.Tensor:
    """log p(completion | prompt) for each (prompt, completion) pair.

    Returns:
        (N,) float32 tensor.
    """
    device = next(model.parameters()).device
    out = [
        _token_stats(model, batch)[:, 0].float().cpu()
        for batch in _batches(tokenizer, pairs, batch_size, max_length, False, device)
    ]
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def target_token_stats(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    batch_size: int = 8,
    max_length: int = 512,
) -> torch.Tensor:
    """Teacher-forced statistics of each example's target (with end of sequence).

    Returns:
        (N, 3) float64: summed log-likelihood of the target tokens, number of
        target tokens, and how many of them are the model's argmax prediction.
    """
    device = next(model.parameters()).device
    pairs = [(e.prompt, e.target) for e in examples]
    out = [
        _token_stats(model, batch).cpu()
        for batch in _batches(tokenizer, pairs, batch_size, max_length, True, device)
    ]
    return torch.cat(out) if out else torch.zeros((0, 3), dtype=torch.float64)


def answer_loss(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    batch_size: int = 8,
    max_length: int = 512,
) -> float:
    """Mean negative log-likelihood per target token (with end of sequence)."""
    stats = target_token_stats(model, tokenizer, examples, batch_size, max_length)
    return float(-stats[:, 0].sum() / stats[:, 1].sum().clamp(min=1))


@torch.no_grad()
def choice_logprobs(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    batch_size: int = 8,
    max_length: int = 512,
) -> list[torch.Tensor]:
    """log p(choice | prompt) of every choice of every example.

    When every choice is a single token, one forward pass over the prompt
    scores all choices (the next-token distribution at its last position);
    otherwise each (prompt, choice) pair is scored on its own. Both give the
    same numbers.

    Returns:
        One (C_i,) float32 tensor per example.
    """
    choice_ids = [[tokenizer.encode(c) for c in e.choices] for e in examples]
    if not all(len(ids) == 1 for row in choice_ids for ids in row):
        pairs = [(e.prompt, c) for e in examples for c in e.choices]
        flat = completion_logprobs(model, tokenizer, pairs, batch_size, max_length)
        return list(torch.split(flat, [len(e.choices) for e in examples]))
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    for i in range(0, len(examples), batch_size):
        encoded = [
            tokenizer.encode(e.prompt)[-max_length:]
            for e in examples[i : i + batch_size]
        ]
        batch = pad_batch(
            [(ids, [-100] * len(ids)) for ids in encoded], tokenizer.pad_token_id, True
        )
        batch = {k: v.to(device) for k, v in batch.items()}
        logp = torch.log_softmax(_tail_logits(model, batch, 1)[:, 0].float(), -1)
        for row, ids in zip(logp.cpu(), choice_ids[i : i + batch_size], strict=True):
            out.append(row[[t[0] for t in ids]])  # (C,)
    return out


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    max_length: int = 512,
) -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches)."""
    device = next(model.parameters()).device
    outputs = []
    for i in range(0, len(prompts), batch_size):
        encoded = [
            tokenizer.encode(p)[-max_length:] for p in prompts[i : i + batch_size]
        ]
        chunk = [(ids, [-100] * len(ids)) for ids in encoded]
        batch = pad_batch(chunk, tokenizer.pad_token_id, left=True)
        ids = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        width = batch["input_ids"].shape[1]
        for row in ids[:, width:].tolist():
            if tokenizer.eos_token_id in row:
                row = row[: row.index(tokenizer.eos_token_id)]
            outputs.append(tokenizer.decode(row))
    return outputs


def evaluate_task(
    model: Any,
    tokenizer: Any,
    task: Task,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Accuracy of ``model`` on ``task``.

    Returns:
        ``{"task", "metric", "accuracy", "correct", "n"}``.
    """
    examples = task.examples
    if task.metric == "choice":
        scores = choice_logprobs(model, tokenizer, examples, batch_size * 2)
        correct = sum(
            int(torch.argmax(s)) == e.label
            for s, e in zip(scores, examples, strict=True)
        )
    else:
        predictions: list[str] = []
        batches = range(0, len(examples), batch_size)
        for i in progress(batches, desc=f"eval {task.name}", enabled=show_progress):
            chunk = [e.prompt for e in examples[i : i + batch_size]]
            predictions += generate(model, tokenizer, chunk, max_new_tokens, batch_size)
        correct = sum(
            is_correct(task.metric, p, e.answer)
            for p, e in zip(predictions, examples, strict=True)
        )
    n = len(examples)
    return {
        "task": task.name,
        "metric": task.metric,
        "accuracy": correct / n if n else 0.0,
        "correct": correct,
        "n": n,
    }
