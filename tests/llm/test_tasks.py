"""Task readers, scoring functions and likelihood helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tamis.llm.models import ByteTokenizer, tiny_llama, tiny_llama_config
from tamis.llm.tasks import (
    Task,
    completion_logprobs,
    encode_pair,
    evaluate_task,
    final_number,
    is_correct,
    load_task,
    normalize_answer,
    pad_batch,
)


def test_final_number() -> None:
    assert final_number("so 3 + 4 = 7\n#### 1,234") == "1234"
    assert final_number("The answer is 42.") == "42"
    assert final_number("-3.50 dollars") == "-3.5"
    assert final_number("2.0") == "2"
    assert final_number("no digits") is None


def test_exact_number_and_exact_match() -> None:
    assert is_correct("exact_number", "We get 72 clips. #### 72", "72")
    assert not is_correct("exact_number", "#### 71", "72")
    assert is_correct("exact_match", "The Eiffel Tower!\nmore", "eiffel tower")
    assert normalize_answer("  An  Apple, ok ") == "apple ok"


def test_gsm8k_reader(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    rows = [{"question": "1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = load_task("gsm8k", path)
    assert task.metric == "exact_number"
    (ex,) = task.examples
    assert ex.prompt == "Question: 1+1?\nAnswer:"
    assert ex.target == " 1+1=2\n#### 2" and ex.answer == "2"


def test_gsm8k_reader_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n')
    with pytest.raises(ValueError, match=r"g.jsonl:2: field 'answer'"):
        load_task("gsm8k", path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"g.jsonl:1: invalid JSON"):
        load_task("gsm8k", path)


def test_sst2_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.tsv"
    path.write_text("sentence\tlabel\ngreat film\t1\ndull\t0\n")
    task = load_task("sst2", path)
    assert [e.label for e in task.examples] == [1, 0]
    assert task.examples[0].choices == (" negative", " positive")
    path.write_text("sentence\tlabel\nbad row\n")
    with pytest.raises(ValueError, match=r"s.tsv:2"):
        load_task("sst2", path)


def test_mmlu_reader(tmp_path: Path) -> None:
    path = tmp_path / "x_test.csv"
    path.write_text("question,choice0,choice1,choice2,choice3,answer\nQ?,a,b,c,d,2\n")
    (ex,) = load_task("mmlu", tmp_path).examples
    assert ex.label == 2 and ex.target == " C"
    assert ex.prompt.endswith("D. d\nAnswer:")


def test_jsonl_pairs_reader(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps({"prompt": "Q", "completion": "Paris<|endoftext|>"}) + "\n"
    )
    (ex,) = load_task("jsonl", path).examples
    assert ex.target == " Paris" and ex.answer == "Paris"


def test_unknown_task_lists_known() -> None:
    with pytest.raises(KeyError, match="gsm8k"):
        load_task("squad", Path("x"))


def test_encode_pair_masks_prompt_and_truncates_prompt_first() -> None:
    tok = ByteTokenizer()
    ids, labels = encode_pair(tok, "abcdef", "xy", max_length=5)
    assert ids == [ord("e"), ord("f"), ord("x"), ord("y"), tok.eos_token_id]
    assert labels == [-100, -100, ord("x"), ord("y"), tok.eos_token_id]


def test_pad_batch_left_and_right() -> None:
    right = pad_batch([([1, 2], [-100, 2]), ([3], [3])], pad_id=0)
    assert right["input_ids"].tolist() == [[1, 2], [3, 0]]
    assert right["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert right["labels"].tolist() == [[-100, 2], [3, -100]]
    left = pad_batch([([1, 2], [-100, 2]), ([3], [3])], pad_id=0, left=True)
    assert left["input_ids"].tolist() == [[1, 2], [0, 3]]


def test_completion_logprobs_match_manual_and_are_batch_invariant() -> None:
    torch.manual_seed(0)
    model = tiny_llama(tiny_llama_config(hidden_size=32, intermediate_size=64))
    tok = ByteTokenizer()
    pairs = [("ab", "c"), ("hello", " xy"), ("q", "zz")]
    batched = completion_logprobs(model, tok, pairs, batch_size=3)
    single = completion_logprobs(model, tok, pairs, batch_size=1)
    assert torch.allclose(batched, single, atol=1e-5)
    ids = torch.tensor([[ord(c) for c in "abc"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, 1], dim=-1)[ord("c")]
    assert float(single[0]) == pytest.approx(float(logp), abs=1e-5)


def test_choice_accuracy_uses_highest_likelihood() -> None:
    torch.manual_seed(0)
    model = tiny_llama(tiny_llama_config(hidden_size=32, intermediate_size=64))
    tok = ByteTokenizer()
    from tamis.llm.tasks import Example

    choices = (" a", " b")
    examples = [Example(f"p{i}", " a", "a", choices, i % 2) for i in range(6)]
    scores = completion_logprobs(
        model, tok, [(e.prompt, c) for e in examples for c in choices]
    )
    expected = sum(
        int(int(torch.argmax(scores[2 * i : 2 * i + 2])) == e.label)
        for i, e in enumerate(examples)
    )
    result = evaluate_task(model, tok, Task("t", "choice", examples))
    assert result["correct"] == expected and result["n"] == 6


def test_offenseval_reader_accepts_padded_labels(tmp_path: Path) -> None:
    path = tmp_path / "o.tsv"
    path.write_text("sentence\tlabel\n@USER you idiot \t 1\nnice day\t0\n")
    task = load_task("offenseval", path)
    assert task.metric == "choice"
    assert [e.label for e in task.examples] == [1, 0]
    assert task.examples[0].target == " yes" and task.examples[1].answer == "no"
    assert "Tweet: @USER you idiot\nAnswer:" in task.examples[0].prompt
    path.write_text("sentence\tlabel\ntext\t2\n")
    with pytest.raises(ValueError, match=r"o.tsv:2: expected 'sentence<TAB>0\|1'"):
        load_task("offenseval", path)


def _tiny() -> tuple[torch.nn.Module, ByteTokenizer]:
    torch.manual_seed(0)
    return tiny_llama(tiny_llama_config(hidden_size=32, intermediate_size=64)), (
        ByteTokenizer()
    )


def test_choice_logprobs_one_pass_equals_pair_scoring() -> None:
    from tamis.llm.tasks import Example, choice_logprobs

    model, tok = _tiny()
    # Single-byte choices take the one-forward path; prompts of unequal length
    # exercise left padding with position ids.
    examples = [
        Example(p, "A", "A", ("A", "B", "C"), 0) for p in ("x", "long prompt", "mid")
    ]
    fast = choice_logprobs(model, tok, examples, batch_size=3)
    pairs = [(e.prompt, c) for e in examples for c in e.choices]
    slow = completion_logprobs(model, tok, pairs, batch_size=1).view(3, 3)
    assert torch.allclose(torch.stack(fast), slow, atol=1e-5)
    # Multi-token choices fall back to pair scoring and give the same numbers.
    multi = [Example("q", " aa", "aa", (" aa", " b"), 0)]
    (scores,) = choice_logprobs(model, tok, multi)
    expected = completion_logprobs(model, tok, [("q", " aa"), ("q", " b")])
    assert torch.allclose(scores, expected)


def test_target_token_stats_match_manual_and_answer_loss() -> None:
    from tamis.llm.tasks import Example, answer_loss, target_token_stats

    model, tok = _tiny()
    examples = [Example("ab", "cd", "cd"), Example("hello there", "x", "x")]
    stats = target_token_stats(model, tok, examples, batch_size=2)
    assert stats.shape == (2, 3)
    for row, e in zip(stats, examples, strict=True):
        ids, labels = encode_pair(tok, e.prompt, e.target, 512)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1]  # (L-1, V)
        logp = torch.log_softmax(logits, -1)
        pos = [t for t in range(1, len(ids)) if labels[t] != -100]
        assert float(row[0]) == pytest.approx(
            sum(float(logp[t - 1, ids[t]]) for t in pos), abs=1e-4
        )
        assert int(row[1]) == len(pos) == len(tok.encode(e.target)) + 1
        hits = sum(int(logits[t - 1].argmax()) == ids[t] for t in pos)
        assert int(row[2]) == hits
    loss = answer_loss(model, tok, examples, batch_size=1)
    assert loss == pytest.approx(float(-stats[:, 0].sum() / stats[:, 1].sum()))
