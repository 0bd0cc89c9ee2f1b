"""Compare a reproduced metrics.json with the committed one.

Same machine, same params and seed give bit-identical metrics (tests/test_pipeline.py checks it).
Another CPU may pick other kernels: float rounding differs, and training then drifts like a new
seed would. The tolerance covers that: 1.0 accuracy point on the 5-fold means, about 3 standard
errors of the seed-to-seed spread of those means. Anything larger is a real change.
"""

import json
import sys

TOLERANCE = 0.01  # accuracy, as a fraction
KEYS = [("test", "accuracy"), ("cv", "val_accuracy", "mean")]


def get(data: dict, path: tuple) -> float:
    for key in path:
        data = data[key]
    return data


def main(committed_path: str, reproduced_path: str) -> int:
    committed = json.load(open(committed_path))
    reproduced = json.load(open(reproduced_path))
    failed = False
    if reproduced["model"]["params"] != committed["model"]["params"]:
        print(f"model.params changed: {committed['model']['params']} -> {reproduced['model']['params']}")
        failed = True
    for path in KEYS:
        a, b = get(committed, path), get(reproduced, path)
        ok = abs(a - b) <= TOLERANCE
        failed |= not ok
        print(f"{'.'.join(path)}: committed {a:.4f}, reproduced {b:.4f}, "
              f"diff {b - a:+.4f} ({'ok' if ok else 'FAIL'}, tolerance {TOLERANCE})")
    same = {k: v for k, v in committed.items() if k != "time"} == \
        {k: v for k, v in reproduced.items() if k != "time"}
    print("bit-identical to the committed metrics" if same else "not bit-identical (another CPU?)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
