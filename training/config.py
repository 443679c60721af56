"""Training settings: `TrainConfig` (every field is a `python -m training.train` flag), the named
recipes (`--recipe`, described in `training.train`'s docstring) and the command line that builds a config."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from training.augment import REDELIVERY_PRESETS
from training.data import PROJECT_ROOT
from training.model import ANCHOR_CONFIG, DEFAULT_CONFIG

RUNS_DIR = PROJECT_ROOT / "runs"


@dataclass(frozen=True)
class TrainConfig:
    model: str = "default"  # "default" (ours), "seed" (the original project's CNN) or "hybrid" (a small transformer)
    filters: tuple[int, ...] = DEFAULT_CONFIG.filters  # default model only: widths per stage
    convs: tuple[int, ...] = DEFAULT_CONFIG.convs_per_stage  # default model only: convs per stage
    epochs: int = 22
    batch_size: int = 128
    learning_rate: float = 2e-3  # Adam, cosine-decayed to learning_rate * min_lr_ratio
    min_lr_ratio: float = 0.01
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    patience: int = 6  # early stopping on validation accuracy
    seed: int = 0
    val_fraction: float = 0.1  # carved from train, stratified, fixed seed
    subset: int = 0  # >0: train on this many images only (searches, tests)
    redelivery: bool = True  # re-delivery augmentation (see training/augment.py)
    redelivery_preset: str = "full"  # "full" (v1: with blur and noise) or "light" (no blur, no noise)
    variants: int = 3  # precomputed re-delivered copies of the training set
    p_clean: float = 0.4  # share of an epoch's images shown without re-delivery
    max_shift: int = 2  # random integer shift in px (reflect padding), with a random left-right flip
    dropout: float = DEFAULT_CONFIG.dropout  # before the logit
    ema_decay: float = 0.0  # >0: keep an exponential moving average of all weights (per step)
    teachers: tuple[str, ...] = ()  # exported model folders whose averaged logit teaches (distillation)
    distill: float = 0.0  # target = (1 - distill) * label + distill * teachers' P(FAKE)
    recipe: str = ""  # the named recipe these values came from, if any
    init: str = ""  # a trained run's .keras to start from (a second stage); its training time counts
    data: str = ""  # zip or folder; "" = ../shared/datasets/cifake
    run_dir: str = ""  # "" = runs/<model>
    generators: str = ""  # extra FAKE sources: a cifar-generators-dev folder ("" = none; "default" = ../shared)
    holdout_fold: int = -1  # >=0: leave this fold of generator sources out (training.generators.source_folds)
    n_folds: int = 4  # source folds for leave-generators-out runs
    generator_repeats: int = 6  # each extra FAKE picture appears this often per epoch (they are ~1 % of the data)
    cifake_per_epoch: int = 0  # >0: CIFAKE pictures drawn afresh per epoch (a replay stage); 0 = all
    generator_jpeg: int = 0  # >0: extra FAKE pictures re-encoded at this JPEG quality, as CIFAKE's are
    select: str = "best"  # "best": best validation accuracy (raw or EMA); "last": the final weights (EMA if on)
    warmup_epochs: float = 0.0  # >0: the learning rate rises linearly from 0 over this many epochs, then the cosine


RECIPES = {
    "anchor": dict(model="default", filters=ANCHOR_CONFIG.filters, convs=ANCHOR_CONFIG.convs_per_stage,
                   dropout=0.0, epochs=25, learning_rate=1e-3, weight_decay=1e-4, patience=25,
                   redelivery=False, max_shift=4, ema_decay=0.0),
    "v2": dict(model="default", filters=ANCHOR_CONFIG.filters, convs=ANCHOR_CONFIG.convs_per_stage,
               dropout=0.0, epochs=24, learning_rate=2e-3, weight_decay=1e-4, patience=24,
               redelivery=True, redelivery_preset="light", p_clean=0.5, max_shift=3, ema_decay=0.999),
}
RECIPES["v2-distill"] = dict(RECIPES["v2"], teachers=("exported",), distill=0.5)
# v3 (issue 21): a second stage from v2's shipped backbone that adds the CIFAR-size generators of
# cifar-generators-dev as FAKE sources, replays 20k CIFAKE pictures drawn afresh per epoch, and
# re-delivers with more resampling (blur-like kernels) and JPEG down to q40, without blur.
# The generators are re-encoded as JPEG q75 first, as CIFAKE's pictures are: CIFAKE's REAL class is
# all JPEG and the generators' samples are lossless PNGs, and a try with them as published learned the
# file format, not the generators (`python -m bench.generator_probe`: its own training generators 30 %
# detected at 3 % CIFAKE-real false positives as PNG, 2 % once JPEG-encoded). MODEL_CARD.md.
RECIPES["v3"] = dict(RECIPES["v2"], init="exported", epochs=3, patience=3, learning_rate=3e-4, ema_decay=0.998,
                     redelivery_preset="v3", p_clean=0.5, generators="default", generator_repeats=12,
                     generator_jpeg=75, cifake_per_epoch=20000, select="last")
# The transformer member (issue 22): the hybrid network with v2's data and re-delivery, a lower peak rate
# after a one-epoch warm-up (attention trained from scratch), 10 epochs to fit one session on this CPU.
RECIPES["hybrid"] = dict(RECIPES["v2"], model="hybrid", epochs=10, patience=10, learning_rate=1e-3,
                         warmup_epochs=1.0)
RECIPES["anchor-redeliver"] = dict(RECIPES["anchor"], init="runs/anchor/best.keras", epochs=3, patience=3,
                                   learning_rate=2e-4, redelivery=True, redelivery_preset="light", p_clean=0.5,
                                   ema_decay=0.999)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """(config, resume?). Long on purpose: one line per TrainConfig field, so every field is a flag."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="",
                        help="named recipe; flags given explicitly override its values")
    parser.add_argument("--model", choices=("default", "seed", "hybrid"), default="default",
                        help="architecture: the CNN (default), the original project's (seed), or the hybrid transformer")
    parser.add_argument("--filters", default=",".join(map(str, TrainConfig.filters)),
                        help="default model: filters per stage, e.g. 32,64,128")
    parser.add_argument("--convs", default=",".join(map(str, TrainConfig.convs)),
                        help="default model: convolutions per stage, e.g. 1,2,2")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="maximum epochs")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate, help="peak Adam LR")
    parser.add_argument("--patience", type=int, default=TrainConfig.patience, help="early-stopping patience")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--subset", type=int, default=0, help="use only this many training images")
    parser.add_argument("--no-redelivery", action="store_true", help="flips and shifts only")
    parser.add_argument("--variants", type=int, default=TrainConfig.variants, help="re-delivered copies")
    parser.add_argument("--p-clean", type=float, default=TrainConfig.p_clean,
                        help="share of each epoch's images shown without re-delivery")
    parser.add_argument("--redelivery-preset", choices=sorted(REDELIVERY_PRESETS), default="full",
                        help="re-delivery mix: full (v1, with blur and noise) or light")
    parser.add_argument("--max-shift", type=int, default=TrainConfig.max_shift, help="random shift in px")
    parser.add_argument("--dropout", type=float, default=TrainConfig.dropout, help="dropout before the logit")
    parser.add_argument("--ema-decay", type=float, default=0.0, help="EMA of weights per step (0 = off)")
    parser.add_argument("--teacher", action="append", default=[], dest="teachers",
                        help="exported model folder that teaches (repeatable; averaged in logit space)")
    parser.add_argument("--distill", type=float, default=0.0,
                        help="weight of the teachers' P(FAKE) in the target (0 = labels only)")
    parser.add_argument("--data", default="", help="CIFAKE zip or folder (default ../shared/datasets/cifake)")
    parser.add_argument("--run-dir", default="", help="output folder (default runs/<model>)")
    parser.add_argument("--init", default="", help="start from this trained .keras (a second stage; same network)")
    parser.add_argument("--generators", default="",
                        help='extra FAKE sources: cifar-generators-dev folder ("default" = ../shared/datasets/...)')
    parser.add_argument("--holdout-fold", type=int, default=-1,
                        help="leave this fold of generator sources out (leave-generators-out runs)")
    parser.add_argument("--n-folds", type=int, default=TrainConfig.n_folds, help="source folds")
    parser.add_argument("--generator-repeats", type=int, default=TrainConfig.generator_repeats,
                        help="times each extra FAKE picture appears per epoch")
    parser.add_argument("--generator-jpeg", type=int, default=TrainConfig.generator_jpeg,
                        help="re-encode extra FAKE pictures as JPEG of this quality, like CIFAKE's (0 = as published)")
    parser.add_argument("--cifake-per-epoch", type=int, default=0,
                        help="CIFAKE pictures drawn afresh each epoch (0 = all)")
    parser.add_argument("--select", choices=("best", "last"), default="best",
                        help="which weights become best.keras: best CIFAKE validation accuracy, or the last epoch's")
    parser.add_argument("--warmup-epochs", type=float, default=TrainConfig.warmup_epochs,
                        help="linear learning-rate warm-up before the cosine, in epochs")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from last.keras")
    args = parser.parse_args(argv)
    values = dict(
        model=args.model, filters=_ints(args.filters), convs=_ints(args.convs), epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience, seed=args.seed,
        subset=args.subset, redelivery=not args.no_redelivery, redelivery_preset=args.redelivery_preset,
        variants=args.variants, p_clean=args.p_clean, max_shift=args.max_shift, dropout=args.dropout,
        ema_decay=args.ema_decay, data=args.data, run_dir=args.run_dir, teachers=tuple(args.teachers),
        distill=args.distill, init=args.init, generators=args.generators, holdout_fold=args.holdout_fold,
        n_folds=args.n_folds, generator_repeats=args.generator_repeats, cifake_per_epoch=args.cifake_per_epoch,
        select=args.select, generator_jpeg=args.generator_jpeg, warmup_epochs=args.warmup_epochs,
    )
    if args.recipe:
        explicit = _explicit_dests(parser, argv)
        if "teachers" in explicit:  # --teacher adds to the recipe's teachers
            values["teachers"] = RECIPES[args.recipe].get("teachers", ()) + values["teachers"]
        values.update({k: v for k, v in RECIPES[args.recipe].items() if k not in explicit}, recipe=args.recipe)
    config = TrainConfig(**values)
    return config, args.resume


def _explicit_dests(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """Config fields named by flags the user typed (so they override a recipe)."""
    import sys

    typed = {a.split("=")[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--")}
    renames = {"no_redelivery": "redelivery"}
    dests = {action.dest for action in parser._actions if set(action.option_strings) & typed}
    return {renames.get(d, d) for d in dests}
