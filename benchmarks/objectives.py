"""StackedWAE, the flat WAE, the hierarchical VAE and the Ladder VAE on one hierarchy.

The paper's motivation is that Markov hierarchies trained as VAEs leave their deep latents unused
(Sønderby et al. 2016; Zhao et al. 2017; Maaløe et al. 2019) while StackedWAE uses every layer.
This benchmark trains ``mnist-stackedwae.v1``, ``mnist-wae.v1``, ``mnist-hvae.v1`` and
``mnist-lvae.v1`` (the same networks; only ``objective`` differs) with the same data, step budget
and seeds, evaluates each with :func:`hierot.evaluation.evaluate` (the metrics of ``hierot eval``)
and reports side by side, as mean ± sample standard deviation over the seeds:

* the linear-probe accuracy of the labels and the active units (Burda et al. 2016) of every layer;
* the KL term of every layer of the hierarchical ELBO under the objective's posterior (for the
  WAEs too: their networks read as a hierarchical VAE);
* the reconstruction error from every depth, the FCD of samples, the top MMD;
* for the VAEs, the importance-weighted log p(x) (K = 100) and the ELBO on the test split.

The VAEs' KL warm-up (linear) is set to a third of the step budget (``--warmup``).

    python -m benchmarks objectives --quick --threads 1   # widths / 4, 300 steps, seed 0
    python -m benchmarks objectives --small --threads 1 --jobs 2  # widths / 4, 1000 steps,
                                                                  # seeds 0 1 2
    python -m benchmarks objectives --threads 1           # preset widths, 2500 steps, seeds 0 1 2

Writes ``benchmarks/results/objectives/<mode>.json``, ``.md``, ``<mode>-metrics.png`` and
``<mode>-samples.png``; run directories go to ``benchmarks/results/objectives/runs/<mode>/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _common as common
from benchmarks import _runs as runs
from benchmarks._layer_rows import layer_rows, table

NAME = "objectives"
PRESETS = {"stacked-wae": "mnist-stackedwae.v1", "wae": "mnist-wae.v1",
           "hvae": "mnist-hvae.v1", "lvae": "mnist-lvae.v1"}
MODES = {
    "quick": {"steps": 300, "seeds": [0], "shrink": 4, "log_every": 50},
    "small": {"steps": 1000, "seeds": [0, 1, 2], "shrink": 4, "log_every": 100},
    "full": {"steps": 2500, "seeds": [0, 1, 2], "shrink": 1, "log_every": 100},
}


def with_eval_extras(record: dict, root: Path) -> dict:
    """Add what ``run_recorded`` does not keep: KL per layer, active-unit dims, log p(x)."""
    path = root / record["run_dir"] / "eval.json"
    if "eval" in record and path.is_file():
        result = json.loads(path.read_text())
        record["eval"].update(kl=result["kl"]["nats"], kl_estimate=result["kl"]["estimate"],
                              active_dims=result["active_units"]["dims"],
                              likelihood=result["likelihood"])
    return record


def summarise(records: list[dict]) -> dict:
    summary = runs.aggregate(records)
    ok = [r for r in records if "eval" in r]
    if not summary:
        return summary
    get = lambda f: runs.mean_std([f(r) for r in ok])
    layers = list(summary["probe"])
    summary.update(
        active={k: get(lambda r, k=k: r["eval"]["active_units"][k]) for k in layers},
        active_dims=ok[0]["eval"]["active_dims"],
        kl={k: get(lambda r, k=k: r["eval"]["kl"][k]) for k in layers},
        log_px=get(lambda r: r["eval"]["likelihood"].get("log_px")),
        elbo=get(lambda r: r["eval"]["likelihood"].get("elbo")),
    )
    return summary


def markdown(report: dict) -> str:
    fmt, b, summary = runs.fmt, report["budget"], report["summary"]
    lines = common.report_intro(report, "Objectives on one hierarchy", (
        f"{', '.join(f'`{p}`' for p in report['presets'].values())} "
        f"on `{json.dumps(b['data'])}`: the same "
        f"networks (hidden widths of the presets divided by {b['shrink']}), {b['steps']} steps of "
        f"batch {b['batch_size']}, seeds {b['seeds']}; the VAEs' KL warm-up is linear over "
        f"{b['warmup']} steps. Metrics of `hierot eval` on the test split, mean ± sample std "
        "over seeds."))
    done = {k: s for k, s in summary.items() if s}
    if len(done) < len(report["presets"]):
        lines += ["Some runs failed; see the JSON.", ""]
    if not done:
        return "\n".join(lines) + "\n"
    lines += table(done, [
        *layer_rows(done),
        ("FCD of samples", lambda s: fmt(s["fcd"])),
        ("MMD(top latent, N(0, I))", lambda s: fmt(s["top_mmd"])),
        ("log p(x), IW K=100 (nats)", lambda s: fmt(s["log_px"], 4)),
        ("ELBO (nats)", lambda s: fmt(s["elbo"], 4)),
        ("s/step", lambda s: fmt(s["step_s"])),
    ])
    some = next(iter(done.values()))
    lines += ["", (f"Probe chance level {some['probe_chance']:.3g}; FCD floor (train vs test) "
              f"{fmt(some['fcd_floor'])}. Active: units whose posterior mean varies across test "
              "points with variance > 0.01. KL: the hierarchical ELBO's term of each layer under "
              "the objective's posterior, analytic at the top (and everywhere for the LVAE), a "
              "one-sample estimate below; for the WAEs it reads their networks as a VAE. The "
              "flat WAE's encoders above q(z1|x) are untrained (Eq. 7 does not depend on them)."),
              ""]
    lines += common.figure_links(report, ("samples", "metrics"))
    return "\n".join(lines) + "\n"


def samples_figure(report: dict, out: Path, run_root: Path) -> Path | None:
    """Samples of the first seed of each objective that ran, side by side."""
    from hierot.evaluation import figures

    def draw(run, run_dir: Path) -> list[Path]:
        return [figures.samples(run, run_dir / "figures" / "samples.png", seed=0)]

    kinds = list(report["presets"])
    return common.first_seed_grid(report, run_root, {kind: kind for kind in kinds}, draw, out,
                                  (4 * len(kinds), 4.4))


def metrics_figure(report: dict, out: Path) -> Path | None:
    from hierot.evaluation.plotting import new_figure, save

    done = {k: s for k, s in report["summary"].items() if s}
    if not done:
        return None
    figure = new_figure(13, 3.4)
    figure.set_dpi(90)
    axes = figure.subplots(1, 4)
    panels = (("probe", "linear-probe accuracy", False),
              ("active", "active units (fraction)", False),
              ("kl", "KL term per layer (nats)", True), ("rec_mse", "rec MSE/pixel from z_i", True))
    for kind, s in done.items():
        layers = list(s["probe"])
        for ax, (key, title, log) in zip(axes, panels):
            scale = [1 / s["active_dims"][z] if key == "active" else 1.0 for z in layers]
            means = [(s[key][z]["mean"] if s[key][z]["mean"] is not None else float("nan")) * c
                     for z, c in zip(layers, scale)]
            errors = [(s[key][z]["std"] or 0) * c for z, c in zip(layers, scale)]
            ax.errorbar(layers, means, yerr=errors, marker="o", capsize=3, label=kind)
            ax.set_title(title, fontsize="medium")
            if log:
                ax.set_yscale("log")
    axes[0].axhline(next(iter(done.values()))["probe_chance"], c="k", ls=":", lw=1, label="chance")
    axes[0].legend(fontsize="small")
    return common.small_png(save(figure, out), colours=64)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.run_parser(NAME, __doc__, MODES,
                               device_help="cpu, cuda (default: the presets' `auto`)")
    parser.add_argument("--small", action="store_true", help=json.dumps(MODES["small"]))
    parser.add_argument("--data", default='{"name": "mnist-5k"}', help="data set mapping (YAML)")
    parser.add_argument("--shrink", type=int, help="divide every hidden width by this")
    parser.add_argument("--warmup", type=int, help="KL warm-up steps of the VAEs (default steps/3)")
    parser.add_argument("--objectives", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    args = parser.parse_args(argv)

    from hierot.spec import parse_yaml

    mode = "quick" if args.quick else "small" if args.small else "full"
    budget = dict(MODES[mode])
    budget.update({k: v for k, v in (("steps", args.steps), ("seeds", args.seeds),
                                     ("shrink", args.shrink)) if v})
    budget.update(batch_size=128, data=parse_yaml(args.data),
                  warmup=args.warmup if args.warmup is not None else budget["steps"] // 3)
    threads = common.set_threads(args.threads)
    presets = {k: PRESETS[k] for k in args.objectives}
    report = common.header(NAME, mode, argv, presets=presets, budget=budget, device=args.device,
                           torch_threads=threads, jobs=args.jobs, runs={}, summary={})
    run_root = runs.fresh_dir(args.out / "runs" / mode)
    arms = {kind: (preset, runs.kl_warmup(preset, budget["warmup"]))
            for kind, preset in presets.items()}
    jobs, kinds = runs.seed_jobs(arms, budget, run_root, device=args.device, out=args.out)
    records = runs.run_parallel(runs.run_recorded, jobs, args.jobs, args.threads)
    records = [with_eval_extras(r, args.out) for r in records]
    for kind in presets:
        report["runs"][kind] = [r for k, r in zip(kinds, records) if k == kind]
        report["summary"][kind] = summarise(report["runs"][kind])
    common.log("figures")
    common.draw_figures(report, args.out, mode, {
        "samples": lambda p: samples_figure(report, p, run_root),
        "metrics": lambda p: metrics_figure(report, p)})
    for path in common.write(report, args.out, markdown):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
