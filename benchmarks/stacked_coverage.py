"""Does StackedWAE beat the flat WAE on sample fidelity, on coverage, on both, and which cheap
change to StackedWAE improves both while keeping its hierarchy?

Arms (``--arms``; each is a preset plus ``--set`` overrides, trained with the same budget and
seeds on ``mnist-5k``, hidden widths divided by ``--shrink``):

=========================== ======================================================================
``flat``                    ``mnist-wae.v1`` (Eq. 7)
``stacked``                 ``mnist-stackedwae.v1`` (Eq. 10)
``stacked-z4``              a 4-D top latent (``layers.4.latent_shape=[4]``)
``stacked-z8``              an 8-D top latent (``layers.4.latent_shape=[8]``)
``stacked-z16``             a 16-D top latent (``layers.4.latent_shape=[16]``)
``stacked-z32``             a 32-D top latent (``layers.4.latent_shape=[32]``)
``stacked-z8-lm1e-5``       the 8-D top latent with ``lambda_match`` 1e-5 (a tenth of the paper's)
``stacked-z8-lm1e-3``       the 8-D top latent with ``lambda_match`` 1e-3 (10x the paper's)
``stacked-z16-lm1e-5``      the 16-D top latent with ``lambda_match`` 1e-5
``stacked-z8-ps512``        the 8-D top latent with 512 prior samples per step
``stacked-z16-ps512``       the 16-D top latent with 512 prior samples per step
``stacked-z8-sinkhorn``     the 8-D top latent with Sinkhorn (geomloss, blur 0.5) on it
``stacked-z8-ps512-rec0.2`` ``stacked-z8-ps512`` with ``lambda_rec`` 0.2 (the paper's 0.05)
``stacked-z8-ps512-rec0.5`` ``stacked-z8-ps512`` with ``lambda_rec`` 0.5
``stacked-z8-ps512-logvar`` ``stacked-z8-ps512`` with the Eq. (12) log-variance penalty on the
                            encoders (``abs-log-var``, 1e-3 on z1 then x0.1 per layer, as SVHN's)
``hvae``, ``lvae``          ``mnist-hvae.v1``, ``mnist-lvae.v1``: the VAE family on the same
                            networks, the KL warm-up a third of the steps (as ``objectives``,
                            whose runs ``--reuse`` takes)
``stacked-match``           ``lambda_match`` 1e-3 (10x) with 512 prior samples per step
``stacked-sinkhorn``        Sinkhorn (geomloss, blur 0.5) on the top latent instead of MMD-IMQ
=========================== ======================================================================

Every run is evaluated by :func:`hierot.evaluation.evaluate` with the prior and a post-hoc
Gaussian mixture along the ancestral and the decoder-mean paths (:mod:`benchmarks._samples`).
The hierarchy is checked by the z5 linear probe and the reconstruction error from every depth.

    python -m benchmarks stacked_coverage --threads 1   # widths / 4, 1000 steps, seeds 0 1 2
    python -m benchmarks stacked_coverage --threads 1 --arms stacked stacked-z4 --tag z4
    python -m benchmarks stacked_coverage --threads 1 --jobs 2 --shrink 1 --steps 2500 --tag full \
        --arms flat stacked stacked-z8-ps512 --reuse benchmarks/results/stacked_vs_flat/full.json

``--reuse REPORT.json ...`` takes the runs of earlier reports (of this benchmark, of
``stacked_vs_flat``, whose ``stacked`` and ``flat`` are the arms of the same names, or of
``objectives``, whose ``hvae`` and ``lvae`` are) instead of training them again, where the arm's
preset, the seed and every override agree; the reused records name the report they came from.
``--against ARM ...`` writes the verdict table against each named arm (default ``flat``).

Writes ``benchmarks/results/stacked_coverage/<tag>.json``, ``.md`` and ``<tag>-classes.png``
(tag: ``reduced`` by default); run directories go to ``.../runs/<tag>/`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _runs as runs
from benchmarks import _samples as samples
from hierot.evaluation.compare import compare_means as compare
from hierot.evaluation.compare import verdict as sample_verdict
from hierot.evaluation.compare import welch_p  # noqa: F401  (re-exported for the report's readers)

NAME = "stacked_coverage"
STACKED, FLAT = "mnist-stackedwae.v1", "mnist-wae.v1"
ARMS: dict[str, tuple[str, list[str]]] = {
    "flat": (FLAT, []),
    "stacked": (STACKED, []),
    "stacked-z4": (STACKED, ["layers.4.latent_shape=[4]"]),
    "stacked-z8": (STACKED, ["layers.4.latent_shape=[8]"]),
    "stacked-z16": (STACKED, ["layers.4.latent_shape=[16]"]),
    "stacked-z32": (STACKED, ["layers.4.latent_shape=[32]"]),
    "stacked-z8-lm1e-5": (STACKED, ["layers.4.latent_shape=[8]", "weights.lambda_match=1.0e-5"]),
    "stacked-z8-lm1e-3": (STACKED, ["layers.4.latent_shape=[8]", "weights.lambda_match=1.0e-3"]),
    "stacked-z16-lm1e-5": (STACKED, ["layers.4.latent_shape=[16]", "weights.lambda_match=1.0e-5"]),
    "stacked-z8-ps512": (STACKED, ["layers.4.latent_shape=[8]", "train.prior_samples=512"]),
    "stacked-z16-ps512": (STACKED, ["layers.4.latent_shape=[16]", "train.prior_samples=512"]),
    "stacked-z8-ps4096": (STACKED, ["layers.4.latent_shape=[8]", "train.prior_samples=4096",
                                    "divergence.prior_pairs=1048576"]),
    "stacked-z8-ps16384": (STACKED, ["layers.4.latent_shape=[8]", "train.prior_samples=16384",
                                     "divergence.prior_pairs=1048576"]),
    "stacked-z8-ps512-rec0.2": (STACKED, ["layers.4.latent_shape=[8]", "train.prior_samples=512",
                                          "weights.lambda_rec=0.2"]),
    "stacked-z8-ps512-rec0.5": (STACKED, ["layers.4.latent_shape=[8]", "train.prior_samples=512",
                                          "weights.lambda_rec=0.5"]),
    "stacked-z8-ps512-logvar": (STACKED, ["layers.4.latent_shape=[8]", "train.prior_samples=512",
                                          ("penalties=[{name: abs-log-var, first: 1.0e-3, "
                                           "ratio: 0.1}]")]),
    "stacked-z8-sinkhorn": (STACKED, ["layers.4.latent_shape=[8]",
                                      "divergence={name: sinkhorn, backend: geomloss, blur: 0.5}"]),
    "hvae": ("mnist-hvae.v1", []),
    "lvae": ("mnist-lvae.v1", []),
    "stacked-match": (STACKED, ["weights.lambda_match=1.0e-3", "train.prior_samples=512"]),
    "stacked-sinkhorn": (STACKED, ["divergence={name: sinkhorn, backend: geomloss, blur: 0.5}"]),
}
DEFAULT = {"steps": 1000, "seeds": [0, 1, 2], "shrink": 4, "log_every": 100,
           "arms": ["flat", "stacked", "stacked-z4", "stacked-match"]}


SAMPLE_DIRECTIONS = {"precision": +1, "density": +1, "recall": +1, "coverage": +1, "class_tv": -1}
"""Sample metrics the verdict compares, and which way is better (+1: higher)."""
FIDELITY, COVERAGE = ("precision", "density"), ("recall", "coverage", "class_tv")
PROBE_FLOOR = 0.45
"""The hierarchy bar of the research question: the top latent's linear probe at least this."""


def verdict(arm: dict, flat: dict, stacked: dict | None, key: str = "prior / ancestral") -> dict:
    """How ``arm`` fares against ``flat`` on each sample metric of ``key``
    (:func:`hierot.evaluation.compare.verdict`: better / worse / tie, Welch's p, wins on both),
    and whether it keeps the hierarchy against the published ``stacked`` (probe z_N at least
    :data:`PROBE_FLOOR`, no reconstruction depth worse beyond the spread).
    """
    sample = sample_verdict(arm["samples"][key], flat["samples"][key], SAMPLE_DIRECTIONS,
                            FIDELITY, COVERAGE)
    top = list(arm["probe"])[-1]
    keeps = arm["probe"][top]["mean"] is not None and arm["probe"][top]["mean"] >= PROBE_FLOOR
    if stacked:
        keeps = keeps and all(compare(arm["rec_mse"][z], stacked["rec_mse"][z], -1) != "worse"
                              for z in stacked["rec_mse"])
    return {**sample, "keeps_hierarchy": keeps}


def verdict_lines(ok: dict[str, dict], baseline: str = "flat") -> list[str]:
    """The Markdown verdict of every other arm against ``baseline`` (prior, ancestral path)."""
    if baseline not in ok:
        return []
    label = dict(zip(runs.SAMPLE_METRICS, samples.COLUMNS))  # the sample table's column names
    names = {m: label[m] for m in SAMPLE_DIRECTIONS}
    title = "the flat WAE" if baseline == "flat" else f"`{baseline}`"
    lines = [f"## Verdict against {title}", "",
             ("Prior samples, ancestral path. *better* / *worse*: the means differ by more than "
              "the sum of the two standard deviations, else *tie*. An arm **wins on both** when "
              "it is "
              "better on a fidelity measure (precision, density) and on a coverage measure "
              "(recall, coverage, class TV) and worse on none; it **keeps the hierarchy** when "
              f"its top latent's probe is at least {PROBE_FLOOR} and no depth reconstructs worse "
              "than the published `stacked` beyond the spread. In brackets: the two-sided p-value "
              "of Welch's t-test over the seeds, a second, less conservative reading."), "",
             "| arm | " + " | ".join(names.values()) + " | wins on both | keeps hierarchy |",
             "| --- |" + " --- |" * (len(names) + 2)]
    for arm, s in ok.items():
        if arm == baseline:
            continue
        v = verdict(s, ok[baseline], ok.get("stacked"))
        cells = [v[m] + (f" (p {v['welch_p'][m]:.2g})" if v["welch_p"][m] is not None else "")
                 for m in names]
        lines.append(f"| {arm} | " + " | ".join(cells) + " | "
                     + ("**yes**" if v["wins_on_both"] else "no") + " | "
                     + ("yes" if v["keeps_hierarchy"] else "no") + " |")
    return lines + [""]


def markdown(report: dict) -> str:
    fmt = runs.fmt
    b, summary = report["budget"], report["summary"]
    lines = [
        ("# Sample fidelity and coverage: StackedWAE variants against the flat WAE "
         f"(`{report['tag']}`)"),
        "",
        f"{report['created']}; wall time {report['wall_time_s']} s. Regenerate with:",
        "",
        f"    {report['command']}",
        "",
        (f"{b['steps']} steps of batch {b['batch_size']} on `{json.dumps(b['data'])}`, seeds "
         f"{b['seeds']}, hidden widths of the presets divided by {b['shrink']}; mean ± sample "
         "std over seeds. Arms:"),
        "",
        *[f"- `{arm}`: `{report['arms'][arm]['preset']}` "
          + (" ".join(f"`--set {o}`" for o in report["arms"][arm]["overrides"])
             or "as published")
          for arm in summary],
        "",
        common.machine_line(report),
        "",
    ]
    reused = sorted({r["reused_from"] for records in report["runs"].values() for r in records
                     if "reused_from" in r})
    if reused:
        lines += [("Runs of " + ", ".join(f"`{a}`" for a, records in report["runs"].items()
                                         if any("reused_from" in r for r in records))
                   + " are reused from " + ", ".join(f"`{p}`" for p in reused)
                   + " (same preset, seeds and overrides), not trained again."), ""]
    ok = {arm: s for arm, s in summary.items() if s}
    if len(ok) < len(summary):
        lines += ["Some runs failed; see the JSON.", ""]
    if not ok:
        return "\n".join(lines) + "\n"
    layers = list(next(iter(ok.values()))["probe"])
    lines += ["## Hierarchy", "",
              "| arm | " + " | ".join(f"probe {z}" for z in layers) + " | "
              + " | ".join(f"rec MSE {z}" for z in layers) + " | s/step |",
              "| --- |" + " ---: |" * (2 * len(layers) + 1)]
    for arm, s in ok.items():
        lines.append(f"| {arm} | " + " | ".join(fmt(s["probe"][z]) for z in layers) + " | "
                     + " | ".join(fmt(s["rec_mse"][z]) for z in layers)
                     + f" | {fmt(s['step_s'])} |")
    lines += [""]
    for baseline in report.get("against", ["flat"]):
        lines += verdict_lines(ok, baseline)
    lines += ["## Sample fidelity and coverage", "", samples.NOTE, ""]
    lines += samples.table({arm: s.get("samples", {}) for arm, s in ok.items()})
    if report.get("classes_png"):
        lines += ["", f"![classes]({report['classes_png']})"]
    return "\n".join(lines) + "\n"


def reusable(report_path: Path | None) -> dict[tuple[str, int], dict]:
    """``{(arm, seed): record}`` of the successful runs of an earlier report, with the preset
    of each arm in ``record["preset"]`` (empty without a report)."""
    if report_path is None:
        return {}
    report = json.loads(report_path.read_text())
    presets = report.get("presets") or {a: v["preset"] for a, v in report.get("arms", {}).items()}
    found = {}
    for arm, records in report.get("runs", {}).items():
        for record in records:
            if "eval" in record and arm in presets:
                found[arm, record["seed"]] = {  # a record reused before keeps its first origin
                    **record, "preset": presets[arm],
                    "reused_from": record.get("reused_from", str(report_path))}
    return found


def with_warmup(arm: str, steps: int) -> tuple[str, list[str]]:
    """``ARMS[arm]``, with the VAEs' linear KL warm-up over a third of ``steps`` (as
    ``objectives`` sets it, so that its runs are reusable here)."""
    preset, extra = ARMS[arm]
    return preset, [*runs.kl_warmup(preset, steps // 3), *extra]


def earlier_record(job: tuple, arm: str, earlier: dict[tuple[str, int], dict]) -> dict | None:
    """The earlier record of ``job`` (same arm, preset, seed and overrides), else ``None``."""
    preset, overrides, *_, seed = job
    record = earlier.get((arm, seed))
    if record and record["preset"] == preset and record["overrides"] == overrides:
        common.log(f"reuse {arm} seed {seed} from {record['reused_from']}")
        return {k: v for k, v in record.items() if k != "preset"}
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks {NAME}",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=DEFAULT["arms"])
    parser.add_argument("--tag", default="reduced", help="name of the result files")
    parser.add_argument("--data", default='{"name": "mnist-5k"}', help="data set mapping (YAML)")
    parser.add_argument("--seeds", nargs="+", type=int, default=DEFAULT["seeds"])
    parser.add_argument("--steps", type=int, default=DEFAULT["steps"])
    parser.add_argument("--shrink", type=int, default=DEFAULT["shrink"],
                        help="divide every hidden width by this")
    parser.add_argument("--device", help="cpu, cuda (default: the presets' `auto`)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in its own process "
                             "(CPU: jobs * threads <= cores)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / NAME)
    parser.add_argument("--reuse", type=Path, nargs="+", default=[], metavar="REPORT.json",
                        help="take matching runs from these earlier reports instead of training")
    parser.add_argument("--against", nargs="+", default=["flat"], metavar="ARM",
                        help="arms to write a verdict table against (default: flat)")
    args = parser.parse_args(argv)
    if set(args.against) - set(args.arms):
        parser.error(f"--against {' '.join(sorted(set(args.against) - set(args.arms)))}: not "
                     f"among --arms ({' '.join(args.arms)})")

    from hierot.spec import parse_yaml

    budget = {"steps": args.steps, "seeds": args.seeds, "shrink": args.shrink,
              "log_every": DEFAULT["log_every"], "batch_size": 128, "data": parse_yaml(args.data)}
    threads = common.set_threads(args.threads)
    report = common.header(NAME, args.tag, argv, tag=args.tag, budget=budget,
                           arms={a: dict(zip(("preset", "overrides"), with_warmup(a, args.steps)))
                                 for a in args.arms},
                           device=args.device, torch_threads=threads, jobs=args.jobs, runs={},
                           summary={})
    report["against"] = args.against
    run_root = runs.fresh_dir(args.out / "runs" / args.tag)
    jobs, keys = runs.seed_jobs({arm: with_warmup(arm, args.steps) for arm in args.arms}, budget,
                                run_root, device=args.device, out=args.out)
    earlier = {key: record for path in args.reuse for key, record in reusable(path).items()}
    reused = [earlier_record(job, arm, earlier) for job, arm in zip(jobs, keys)]
    trained = iter(runs.run_parallel(runs.run_recorded,
                                     [j for j, r in zip(jobs, reused) if r is None],
                                     args.jobs, args.threads))
    records = [r if r is not None else next(trained) for r in reused]
    for arm in args.arms:
        report["runs"][arm] = [r for k, r in zip(keys, records) if k == arm]
        report["summary"][arm] = runs.aggregate(report["runs"][arm])
    arms = {a: s.get("samples", {}) for a, s in report["summary"].items() if s}
    common.draw_figures(report, args.out, args.tag,
                        {"classes": lambda p: samples.histogram_figure(arms, p)})
    for path in common.write(report, args.out, markdown):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
