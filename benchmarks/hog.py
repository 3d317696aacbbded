"""HOG features in one process against joblib's worker processes: images per second.

Why: chapter 2 computes HOG descriptors for every image with
:func:`imgcls_helpers.features.hog_features`, whose default ``n_jobs=-1`` starts one worker
process per core. This checks that the workers pay for themselves at the chapter's sizes.
The worker pool starts in the untimed warm-up round (joblib keeps it for later calls).
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np

from imgcls_helpers.features import hog_features

from .timing import interleaved, medians, parser, write_results


def main(argv: list[str] | None = None) -> dict:
    """Time ``hog_features`` at each ``n_jobs`` in turn and write the results."""
    options = parser(__doc__)
    options.add_argument("--images", type=int, default=4000)
    options.add_argument("--jobs", type=int, nargs="+", default=[1, 2, -1])
    args = options.parse_args(argv)
    if args.quick:
        args.images, args.jobs = 200, [1, 2]
    repeats = args.repeats or (2 if args.quick else 5)

    images = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    # small chunks in quick mode, so that two workers still get one each
    chunk = 500 if not args.quick else 100
    cases = {
        f"n_jobs={jobs}": partial(hog_features, images, n_jobs=jobs, chunk_size=chunk)
        for jobs in args.jobs
    }
    seconds = interleaved(cases, repeats)
    median = medians(seconds)

    one = median.get("n_jobs=1")
    rows = [
        {
            "n_jobs": name.split("=")[1],
            "median_s": s,
            "images_per_s": args.images / s,
            "speedup_vs_1": one / s if one else float("nan"),
        }
        for name, s in median.items()
    ]
    summary = {f"speed-up {row['n_jobs']} / 1": row["speedup_vs_1"] for row in rows[1:]}
    notes = [
        f"{args.images} random RGB 32x32 uint8 images, converted to grey (the default), "
        f"chunks of {chunk}; n_jobs=-1 is one worker per core ({os.cpu_count()} here).",
    ]
    settings = {"images": args.images, "chunk_size": chunk, "repeats": repeats, "quick": args.quick}
    write_results(
        "hog",
        settings=settings,
        rows=rows,
        summary=summary,
        seconds=seconds,
        notes=notes,
        out=args.out,
    )
    return summary


if __name__ == "__main__":
    main()
