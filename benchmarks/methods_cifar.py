"""Every anti-aliasing method side by side on CIFAR-10 at real accuracy (issue 19, deliver 3).

For each seed and method: the fast airbench-style network and schedule (``methods_cifar_train.py``)
trained from scratch on all 50,000 training images, the baseline converted by
``antialias(net, method=..., filter_size=..., circular=...)`` before training (circular padding
for the methods that support it, APS and LPS), then measured on the 10,000 test images by the
package's own protocol scorers in one loop: accuracy, crop-shift consistency (``-es`` scaled:
the 32px images reflect-padded by 4, two random 32px crops per image), circular consistency
(``-ec``: two random circular shifts), fractional consistency (``-ef``: two sub-pixel Fourier
shifts), adversarial accuracy (``-ea``: correct at every crop offset of a 5x5 grid); and the
training speed (images/s), the peak GPU memory and the activations saved for backward per batch.
Prints a Markdown table (mean ± std over seeds) and writes it with a JSON of every run into --out.

Every seed's methods share the initial weights of the baseline, the whitening filters, the batch
order, flips and crops. A method that this version of ``antialias()`` does not register is listed
as "not available in this version"; one whose converted network equals an earlier row's (blur-first
is blurpool on a network without strided convs) is not trained twice. Runs go seed by seed, so
``--budget-seconds`` leaves every method with fewer seeds rather than some methods with none; the
runs it skips are listed.

GPU (one command; it starts no run it expects to end after 7 minutes, so it ends before 8).
Expected, not measured (no GPU was at hand): about 5 s of training per baseline run on an H100
(airbench94 trains 9.9 epochs in 3.8 s on an A100), more for the methods with learned layers,
20-30 s to decode the JPEG files once; check the baseline's accuracy first with
``--methods baseline --seeds 0``:

    .venv/bin/python benchmarks/methods_cifar.py --device cuda --budget-seconds 420 --out results/methods_cifar

CPU (a stated small budget: 2,000 training and 300 test images, 2 epochs, width 8, one seed; about
30 CPU-seconds per method here, i.e. 4-6 minutes for every method on 2 quiet cores, and never more
than the budget plus one run):

    .venv/bin/python benchmarks/methods_cifar.py --device cpu --threads 2 --max-train-images 2000 \\
        --max-test-images 300 --epochs 2 --seeds 0 --width 8 --batch-size 200 --adv-grid 2 \\
        --budget-seconds 360 --out results/methods_cifar_cpu
"""
from __future__ import annotations

import argparse
import sys
import time

from _methods_common import RunBudget
from antialiased.errors import AntialiasedError
from methods_cifar_run import NET_NAME, Session, add_cifar_args, build_model, open_session, results_table, same_as
from methods_cifar_run import budgeted_run, machine_text, write_outputs
from methods_cifar_train import Recipe, train

EXTRA = [("train_images_per_s", "Train img/s", 0), ("peak_memory_MiB", "Training peak GPU MiB", 0),
         ("activations_MiB", "Saved for backward MiB/batch", 1)]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_cifar_args(p, seeds=[0, 1, 2], epochs=Recipe.epochs)
    return p


def run_one(session: Session, spec, seed: int) -> dict:
    """Train and measure one method at one seed."""
    model = build_model(session, spec, seed)
    numbers = train(model, session.train_batches(seed), session.recipe, amp_dtype=session.amp_dtype)
    numbers.update(session.evaluate(model, seed))
    numbers["activations_MiB"] = session.activations_MiB(model)
    return numbers


def _line(record: dict, elapsed: float) -> str:
    if record["status"] != "done":
        return f"seed {record['seed']} {record['method']}: {record['status']}"
    return (f"seed {record['seed']} {record['method']}: acc {record['acc1']:.2f}  -es {record['crop_shift']:.2f}  "
            f"-ec {record['circular']:.2f}  -ef {record['fractional']:.2f}  -ea {record['adversarial']:.2f}  "
            f"({record['train_time_s']:.1f}s training, {elapsed:.0f}s so far)")


def run_all(session: Session, start: float, log=print, progress=lambda runs: None) -> list[dict]:
    """Every seed's runs of every method (seed by seed), within the budget counted from ``start``;
    ``progress(runs)`` after each run."""
    budget, twins, runs = RunBudget(session.args.budget_seconds, start), same_as(session), []
    for seed in session.args.seeds:
        for spec in session.specs:
            record, ran = budgeted_run(session, spec, seed, budget, twins, lambda: run_one(session, spec, seed), log)
            runs.append(record)
            if ran:
                log(_line(record, budget.elapsed()))
                progress(runs)
    return runs


def report(session: Session, runs: list[dict], seconds: float) -> str:
    args, data, recipe = session.args, session.data, session.recipe
    skipped = [f"{r['method']} (seed {r['seed']})" for r in runs if r["status"].startswith("skipped")]
    lines = [
        f"CIFAR-10 ({len(data.train_labels)} training, {len(data.test_labels)} test images), network "
        f"{NET_NAME} width {recipe.width}, {recipe.epochs:g} epochs, batch {recipe.batch_size}, seeds "
        f"{args.seeds}; {machine_text(session.machine)}, {'bfloat16 autocast' if session.amp_dtype else 'float32'}; "
        f"{seconds / 60:.1f} min in all.",
        results_table(session, runs, EXTRA),
        "Training peak GPU MiB: the most memory a training run allocated above the data and the model (CUDA "
        "only); saved for backward: the activations one training batch keeps (distinct storages).",
        f"Protocols: accuracy of the 32px image; -es two random 32px crops of the image reflect-padded by "
        f"{session.shifts.pad}; -ec two circular shifts from all 32x32; -ef two shifts from [0, 1)^2 pixels "
        f"(Fourier); -ea correct at all {session.shifts.grid}x{session.shifts.grid} crop offsets; "
        f"{session.shifts.passes} pair(s) per image.",
    ]
    if skipped:
        lines.append("Not run (over --budget-seconds): " + ", ".join(skipped) + ".")
    lines += [f"Failed: {r['method']} (seed {r['seed']}): {r['status'][len('failed: '):]}" for r in runs
              if r["status"].startswith("failed")]
    return "\n\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        session = open_session(args, Recipe(epochs=args.epochs, batch_size=args.batch_size, width=args.width),
                               log=lambda m: print(m, file=sys.stderr))
        save = (lambda runs: write_outputs(session, "methods_cifar", report(session, runs, time.perf_counter() - start),
                                           {"runs": runs}))
        runs = run_all(session, start, log=lambda m: print(m, file=sys.stderr, flush=True), progress=save)
    except AntialiasedError as exc:
        print(f"methods_cifar: {exc}", file=sys.stderr)
        return 2
    text = report(session, runs, time.perf_counter() - start)
    print(text)
    save(runs)
    print(f"wrote {args.out / 'methods_cifar.md'} and {args.out / 'methods_cifar.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
