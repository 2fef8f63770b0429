"""``tamis rec semantics``: build or load the semantic cache of an SRA-CL config."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tamis.cli_common import fail_on_errors


@click.command("semantics")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option(
    "--examples",
    type=int,
    default=3,
    show_default=True,
    help="Print this many items with their nearest semantic neighbours.",
)
def semantics(config: Path, overrides: tuple[str, ...], examples: int) -> None:
    """Build (or load) item texts, user descriptions, embeddings and neighbours.

    CONFIG is a rec-train YAML whose method is sra-cl; the settings are read
    from method_args.semantics. Then key=value overrides, e.g.
    method_args.semantics.summary=llm.
    """
    from tamis.core.config import from_dict, load_config
    from tamis.recsys.config import RecTrainConfig
    from tamis.recsys.methods.sracl import SRACLArgs
    from tamis.recsys.semantic.pipeline import semantics_for_split
    from tamis.recsys.semantic.texts import item_texts
    from tamis.recsys.train import build_split

    with fail_on_errors():
        cfg = load_config(RecTrainConfig, config, overrides)
        if cfg.method != "sra-cl":
            raise ValueError(
                f"{config}: method is {cfg.method!r}; `semantics` needs method: sra-cl"
            )
        args = from_dict(SRACLArgs, cfg.method_args)
        split = build_split(cfg)
        sem = semantics_for_split(split, args.semantics)
    click.echo(json.dumps(sem.info, indent=2))
    if examples > 0:
        texts = item_texts(
            split.data.item_features,
            list(split.data.item_ids),
            args.semantics.item_fields or None,
        )
        for item in range(min(examples, len(texts))):
            click.echo(f"\n{texts[item][:100]}")
            for nb in sem.item_neighbours[item][:3]:
                if nb >= 0:
                    click.echo(f"  ~ {texts[nb][:96]}")
