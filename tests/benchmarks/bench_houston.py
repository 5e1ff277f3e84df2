"""Benchmark: the Houston 2013 experiment, LiDAR-only test set, full labels, 3 seeds.

    python tests/benchmarks/bench_houston.py             # full run (about 3 min on 2 busy cores)
    python tests/benchmarks/bench_houston.py --quick     # smoke test (one seed, few epochs)

Runs the tutorial config ``tutorials/configs/houston2013_evaluate.yaml`` through
:func:`~geoalign.models.evaluation.run_evaluation`, reduced to the rows the benchmark reports:
a linear probe on the LiDAR encoder from random weights, after single-modal contrastive
pretraining (LiDAR, two augmented views) and after multi-modal HSI <-> LiDAR pretraining with
augmented views (the variant chosen on the spatially blocked validation split; each pretrained
once per seed on the 2,832 training pixels, labels unused), and the random forest on
the 21 raw LiDAR features (the baseline, side by side in the same process and on the same labels).
Scores are overall accuracy on the standard 12,197-pixel LiDAR-only test set, in percent. Results
go to a fresh temporary folder (nothing is reused from earlier runs).

The last line printed is a JSON object: ``multimodal_oa``, ``single_modal_oa``,
``random_init_oa``, ``random_forest_oa`` (means over the seeds, %), their ``*_std``, ``seeds``
and ``seconds``; ``--out FILE`` writes it too. Goal of issue 7: multimodal_oa > single_modal_oa >
random_init_oa and multimodal_oa >= 72 and above the random forest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tutorials" / "configs" / "houston2013_evaluate.yaml"
ROWS = {
    "multimodal_oa": "multi-modal HSI+LiDAR + augmentation / linear probe",
    "single_modal_oa": "single-modal LiDAR (augmented views) / linear probe",
    "random_init_oa": "random init / linear probe",
    "random_forest_oa": "supervised: random forest",
}


def bench_config(output_dir: Path, *, quick: bool) -> dict[str, Any]:
    """The tutorial config reduced to the benchmark's rows (full labels, LiDAR column)."""
    from geoalign.models.evaluation import EvaluationConfig

    raw = EvaluationConfig.from_yaml(CONFIG).model_dump(mode="json")
    keep = {row.split(" / ")[0] for row in ROWS.values()}
    raw["variants"] = [v for v in raw["variants"] if v["name"] in keep]
    raw["downstream"]["protocols"] = ["linear_probe"]
    raw["downstream"]["regimes"] = [{"kind": "all"}]
    raw["baselines"] = {"random_forest": True, "supervised": False}
    raw["output_dir"] = str(output_dir)
    if quick:
        raw["seeds"] = [0]
        raw["pretraining"]["overrides"] = {"trainer": {"max_epochs": 2}}
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 2 pretraining epochs")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()

    from geoalign.models.evaluation import EvaluationConfig, run_evaluation

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_houston_") as folder:
        raw = bench_config(Path(folder), quick=args.quick)
        result = run_evaluation(EvaluationConfig.from_dict(raw))
        table = result.tables["all"]
        print(table.markdown(), flush=True)
        out: dict[str, Any] = {}
        for key, row in ROWS.items():
            stats = table.stats(row, "lidar")
            if stats is None:
                sys.exit(f"no result for row {row!r}")
            out[key] = round(stats[0], 2)
            std = round(stats[1], 2) if stats[2] > 1 else None  # undefined for one seed
            out[key.removesuffix("_oa") + "_std"] = std
    out["seeds"] = raw["seeds"]
    out["seconds"] = round(time.perf_counter() - start, 1)
    line = json.dumps(out)
    if args.out is not None:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
