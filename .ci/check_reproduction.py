"""Compare a reproduced metrics.json with the committed one.

Same machine (and device), same params and seed give bit-identical metrics (tests/test_pipeline.py checks it;
this script says whether they are). Another CPU may pick other kernels: float rounding differs, and
training then drifts like a new seed would. Measured seed-to-seed sd of the 5-fold means on the
defaults: 0.5 points (reports/study/precision, fp32, n = 3), so two independent draws differ with
sd ~0.7 points. The tolerance, 1.5 points, is ~2 sd of that difference: a real change of the
pipeline's accuracy shows; a different CPU rarely trips it.
"""

import json
import sys

TOLERANCE = 0.015  # accuracy, as a fraction
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
    # The devices are compared apart: metrics.json from before they were recorded came from the CPU.
    apart = ("time", "device")
    same = {k: v for k, v in committed.items() if k not in apart} == \
        {k: v for k, v in reproduced.items() if k not in apart}
    cpu = {"train": "cpu", "evaluate": "cpu"}
    where = (committed.get("device", cpu), reproduced.get("device", cpu))
    if where[0] != where[1]:
        print(f"devices: committed {where[0]}, reproduced {where[1]} (bit identity holds per device "
              f"and software stack only)")
    print("bit-identical to the committed metrics" if same else "not bit-identical (another CPU?)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
