"""Fine-tuning recovers what conversion costs (issue 19, deliver 4): CIFAR-10, each method applied to a
trained baseline, measured before and after a short fine-tune.

Per seed: the baseline is trained once with the fast recipe of ``methods_cifar.py``; then for each
method a copy of it is converted by ``antialias()`` and loaded through ``antialiased.load_baseline``
(strict about every key the baseline has; the learned methods' new layers start as their paper
initializes them: ``init_from_baseline()`` or ``reset_parameters()``). Each converted copy is
measured (accuracy, ``-es``, ``-ec``, ``-ef``, ``-ea``, as ``methods_cifar.py``), fine-tuned for
``--finetune-fraction`` of the training epochs (default 10%) with the same schedule shape at
``--finetune-lr-scale`` of its learning rate (default 0.1; the whitening bias stays frozen), and
measured again. The ``baseline`` row is the control: the unconverted network fine-tuned alike, so
a method's gain is not just the extra steps. All methods of a seed fine-tune on the same batches.

GPU (expected, not measured: per seed one baseline training of about 5 s on an H100, then per
method two evaluations and a 1.6-epoch fine-tune, a few seconds; about 2-3 min for 3 seeds):

    .venv/bin/python benchmarks/finetune_methods.py --device cuda --budget-seconds 300 --out results/finetune_methods

CPU (a stated small budget, as methods_cifar.py's; a few minutes on 2 quiet cores):

    .venv/bin/python benchmarks/finetune_methods.py --device cpu --threads 2 --max-train-images 2000 \\
        --max-test-images 300 --epochs 4 --seeds 0 --width 8 --batch-size 200 --adv-grid 2 \\
        --budget-seconds 360 --out results/finetune_methods_cpu
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

from torch import nn

from _methods_common import MethodSpec, RunBudget, convert, markdown_table, mean_std
from antialiased.models.transfer import load_baseline  # antialiased.load_baseline
from antialiased.errors import AntialiasedError, ConfigError
from methods_cifar_run import INPUT_SIZE, METRICS, NET_NAME, Session, add_cifar_args, build_model, open_session
from methods_cifar_run import budgeted_run, machine_text, same_as, write_outputs
from methods_cifar_train import Recipe, train

BASELINE = MethodSpec("baseline")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_cifar_args(p, seeds=[0, 1, 2], epochs=Recipe.epochs)
    p.add_argument("--finetune-fraction", type=float, default=0.1, help="fine-tuning epochs / training epochs")
    p.add_argument("--finetune-lr-scale", type=float, default=0.1, help="fine-tuning learning rate / training's")
    return p


def converted_copy(trained: nn.Module, spec: MethodSpec, session: Session) -> nn.Module:
    """A copy of the trained baseline converted as ``spec`` says, loaded by ``load_baseline``."""
    model = copy.deepcopy(trained).cpu()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model = convert(model, spec, session.args.circular, INPUT_SIZE)
    if spec.method is not None:
        load_baseline(model, state, source=f"the trained {NET_NAME} baseline")
    return model.to(session.device, memory_format=session.memory_format)


def finetune_one(session: Session, trained: nn.Module, spec: MethodSpec, seed: int) -> dict:
    model = converted_copy(trained, spec, session)
    before = session.evaluate(model, seed)
    recipe = session.recipe.finetune(session.args.finetune_fraction, session.args.finetune_lr_scale)
    numbers = train(model, session.train_batches(10_000 + seed), recipe, amp_dtype=session.amp_dtype,
                    whiten_bias=False)
    after = session.evaluate(model, seed)
    return {**{f"before_{k}": v for k, v in before.items()}, **{f"after_{k}": v for k, v in after.items()},
            "finetune_steps": numbers["steps"], "finetune_time_s": numbers["train_time_s"]}


def run_seed(session: Session, seed: int, budget: RunBudget, twins: dict[str, str], log=print,
             progress=lambda runs: None) -> list[dict]:
    """Train the baseline of ``seed``, then convert, measure, fine-tune and measure each method."""
    with budget.timed("train baseline"):
        trained = build_model(session, BASELINE, seed)
        trained_numbers = train(trained, session.train_batches(seed), session.recipe, amp_dtype=session.amp_dtype)
    log(f"seed {seed}: baseline trained ({trained_numbers['train_time_s']:.1f}s)")
    runs = []
    for spec in session.specs:
        record, ran = budgeted_run(session, spec, seed, budget, twins,
                                   lambda: finetune_one(session, trained, spec, seed), log)
        runs.append(record)
        if not ran:
            continue
        record["baseline_train_time_s"] = trained_numbers["train_time_s"]
        log(f"seed {seed} {spec.text}: " + (f"acc {record['before_acc1']:.2f} -> {record['after_acc1']:.2f}, -es "
                                            f"{record['before_crop_shift']:.2f} -> {record['after_crop_shift']:.2f}"
                                            if record["status"] == "done" else record["status"]))
        progress(runs)
    return runs


def table(session: Session, runs: list[dict]) -> str:
    """Per method and metric: mean ± std before -> after the fine-tune."""
    headers = ["Method", *(f"{label} (%): converted → fine-tuned" for _, label in METRICS), "Seeds"]
    rows = []
    for spec in session.specs:
        done = [r for r in runs if r["method"] == spec.text and r["status"] == "done"]
        if not done:
            why = next((r["status"] for r in runs if r["method"] == spec.text), "not run")
            rows.append([f"`{spec.text}`", why, *[""] * (len(headers) - 2)])
            continue
        cells = [f"{mean_std([r[f'before_{k}'] for r in done])} → {mean_std([r[f'after_{k}'] for r in done])}"
                 for k, _ in METRICS]
        rows.append([f"`{spec.text}`" + (" (control: not converted)" if spec.method is None else ""), *cells,
                     str(len(done))])
    return markdown_table(headers, rows)


def report(session: Session, runs: list[dict], seconds: float) -> str:
    args, recipe = session.args, session.recipe
    ft = recipe.finetune(args.finetune_fraction, args.finetune_lr_scale)
    return "\n\n".join([
        f"CIFAR-10 ({len(session.data.train_labels)} training, {len(session.data.test_labels)} test images): "
        f"{NET_NAME} width {recipe.width} trained {recipe.epochs:g} epochs (batch {recipe.batch_size}), converted, "
        f"fine-tuned {ft.epochs:g} epochs at {ft.lr_scale:g}x the learning rate; seeds {args.seeds}; "
        f"{machine_text(session.machine)}; "
        f"{seconds / 60:.1f} min in all.",
        table(session, runs),
    ])


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    start, log = time.perf_counter(), (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        if not 0 < args.finetune_fraction <= 1 or args.finetune_lr_scale <= 0:
            raise ConfigError("--finetune-fraction must be in (0, 1] and --finetune-lr-scale > 0")
        session = open_session(args, Recipe(epochs=args.epochs, batch_size=args.batch_size, width=args.width), log)
        budget, twins, runs = RunBudget(args.budget_seconds, start), same_as(session), []

        def save(more: list[dict]) -> None:
            seconds = time.perf_counter() - start
            write_outputs(session, "finetune_methods", report(session, runs + more, seconds), {"runs": runs + more})
        for seed in args.seeds:
            if budget.fits("train baseline"):
                runs += run_seed(session, seed, budget, twins, log, progress=save)
            else:
                runs += [{"method": s.text, "seed": seed, "status": "skipped: over --budget-seconds"}
                         for s in session.specs]
    except AntialiasedError as exc:
        print(f"finetune_methods: {exc}", file=sys.stderr)
        return 2
    print(report(session, runs, time.perf_counter() - start))
    save([])
    print(f"wrote {args.out / 'finetune_methods.md'} and {args.out / 'finetune_methods.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
