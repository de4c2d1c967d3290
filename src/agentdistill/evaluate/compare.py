"""Two arms of evaluations, each trained with several seeds, compared question by question.

Retraining a small student with another seed moves its scores more than most changes to its data do,
so one run per arm decides nothing. An arm here is a list of eval folders (``eval/<name>/``), one per
training seed, all run on the same questions. For each headline rate the arm's value is pooled over
its seeds; the difference B - A gets a 95% interval from a bootstrap that resamples the questions
(the same draw for both arms: the comparison is paired) and, within each arm, its seeds. The
interval so holds the noise of the training seed as well as that of the question sample.

Questions are matched by their text, so evals of runs whose question ids differ still pair up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agentdistill.errors import UserError
from agentdistill.evaluate.metrics import HEADLINE
from agentdistill.evaluate.runner import load_results
from agentdistill.run_layout import RESULTS


@dataclass
class ArmRate:
    value: float | None  # pooled over the arm's seeds and the common questions
    per_seed: list[float | None]


@dataclass
class RateComparison:
    metric: str
    a: ArmRate
    b: ArmRate
    difference: float | None  # b - a
    interval: list[float] | None  # 95% bootstrap interval of the difference


@dataclass
class ArmComparison:
    n_questions: int  # answered by every eval of both arms
    n_seeds: tuple[int, int]
    rates: list[RateComparison]


def read_scores(eval_dir: Path) -> dict[str, dict]:
    """{question text: scores} of one eval folder, from the latest row per question as the report reads it."""
    path = Path(eval_dir) / RESULTS
    if not path.is_file():
        raise UserError(f"{eval_dir} holds no {RESULTS}.", hint="Pass eval folders written by `agentdistill eval`.")
    return {row["question"]["text"]: row["scores"] for row in load_results(path).values()}


def _counts(evals: list[dict[str, dict]], questions: list[str], field: str) -> np.ndarray:
    """[seeds, questions] of one QuestionScore field."""
    return np.array([[float(e[q].get(field, 0)) for q in questions] for e in evals])


def _pooled(num: np.ndarray, den: np.ndarray) -> float | None:
    total = den.sum()
    return float(num.sum() / total) if total > 0 else None


def compare_arms(a_dirs: list[Path], b_dirs: list[Path], metrics: list[str] | None = None,
                 n_boot: int = 2000, seed: int = 0) -> ArmComparison:
    """Compare arm B's evals with arm A's on the questions every one of them answered."""
    if not a_dirs or not b_dirs:
        raise UserError("each arm needs at least one eval folder.", hint="Pass --a DIR and --b DIR, once per seed.")
    a_evals, b_evals = [read_scores(d) for d in a_dirs], [read_scores(d) for d in b_dirs]
    common = set.intersection(*(set(e) for e in a_evals + b_evals))
    if not common:
        raise UserError("the evals share no question.", hint="Compare evals run on the same split or --questions file.")
    questions = sorted(common)
    rng = np.random.default_rng(seed)
    q_idx = rng.integers(0, len(questions), size=(n_boot, len(questions)))
    a_idx = rng.integers(0, len(a_evals), size=(n_boot, len(a_evals)))
    b_idx = rng.integers(0, len(b_evals), size=(n_boot, len(b_evals)))

    def resampled(num: np.ndarray, den: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        # [boot, seeds drawn, questions drawn] summed to one pooled rate per replicate
        nums = num[seeds[:, :, None], q_idx[:, None, :]].sum(axis=(1, 2))
        dens = den[seeds[:, :, None], q_idx[:, None, :]].sum(axis=(1, 2))
        return np.where(dens > 0, nums / np.maximum(dens, 1), np.nan)

    rates = []
    for metric in metrics or list(HEADLINE):
        if metric not in HEADLINE:
            raise UserError(f"unknown metric {metric!r}.", hint=f"Choose from: {', '.join(HEADLINE)}.")
        num_field, den_field = HEADLINE[metric]
        na, da = _counts(a_evals, questions, num_field), _counts(a_evals, questions, den_field)
        nb, db = _counts(b_evals, questions, num_field), _counts(b_evals, questions, den_field)
        a = ArmRate(_pooled(na, da), [_pooled(n, d) for n, d in zip(na, da, strict=True)])
        b = ArmRate(_pooled(nb, db), [_pooled(n, d) for n, d in zip(nb, db, strict=True)])
        if a.value is None or b.value is None:
            rates.append(RateComparison(metric, a, b, None, None))
            continue
        diffs = resampled(nb, db, b_idx) - resampled(na, da, a_idx)
        diffs = diffs[~np.isnan(diffs)]
        interval = [round(float(x), 4) for x in np.percentile(diffs, [2.5, 97.5])] if diffs.size else None
        rates.append(RateComparison(metric, a, b, b.value - a.value, interval))
    return ArmComparison(len(questions), (len(a_evals), len(b_evals)), rates)


def plot_comparison(result: ArmComparison, path: Path, labels: tuple[str, str] = ("A", "B")) -> Path:
    """A PNG with one panel per rate: each arm's pooled value as a bar, its seeds as dots, and B - A with its
    95% interval in the panel's title, so a reader sees the seed spread beside the difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r for r in result.rates if r.a.value is not None and r.b.value is not None]
    if not rates:
        raise UserError("no rate has a value in both arms, so there is nothing to plot.",
                        hint="Choose rates the evals measure with --metric.")
    fig, axes = plt.subplots(1, len(rates), figsize=(2.6 * len(rates) + 0.6, 3.4), squeeze=False)
    for ax, r in zip(axes[0], rates, strict=True):
        for x, arm, color in ((0, r.a, "tab:blue"), (1, r.b, "tab:orange")):
            ax.bar(x, arm.value, 0.6, color=color, alpha=0.35)
            seeds = [v for v in arm.per_seed if v is not None]
            ax.scatter([x + d for d in _spread(len(seeds))], seeds, color=color, s=18, zorder=3)
        ax.set_xticks([0, 1], list(labels))
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
        ci = f"\n{r.interval[0]:+.2f}..{r.interval[1]:+.2f}" if r.interval else ""
        ax.set_title(f"{r.metric.replace('_rate', '').replace('_', ' ')}\n{labels[1]} - {labels[0]} "
                     f"{r.difference:+.3f}{ci}", fontsize=8)
    fig.suptitle(f"{result.n_questions} questions; {result.n_seeds[0]} vs {result.n_seeds[1]} seeds "
                 "(bars: pooled, dots: seeds)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _spread(n: int, width: float = 0.3) -> list[float]:
    """x offsets that keep n seed dots on one bar apart."""
    return [0.0] if n <= 1 else [-width / 2 + width * i / (n - 1) for i in range(n)]
