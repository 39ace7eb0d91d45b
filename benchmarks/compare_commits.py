"""Run one benchmark at two commits, back to back, and compare their ratios.

For a change that should not move performance (a refactor), the benchmark's
ratios against its peers (peer time / tvm-snn time) must stay within the
machine's noise. This checks out ``--base`` in a temporary git worktree,
runs the benchmark script there and in this tree, alternating for
``--rounds`` rounds (base first in odd rounds, this tree first in even
ones), and prints, per case and peer, the ratio at each commit and their
quotient (this tree / base; above 1 means this tree is faster against that
peer). Each run is a fresh process with the tree first on ``PYTHONPATH``.
Writes ``results/compare_<benchmark>.json``.

Run: ``.venv/bin/python benchmarks/compare_commits.py --base REV bench_layers.py --quick``.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from peers import RESULTS_DIR, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Fields of a result case that are measurements, not the case's identity.
MEASURED = ("median_ms", "ratios", "lowered", "reason", "convs", "threads", "compile_s", "report")


def _git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _run(tree, script, script_args):
    """Run ``benchmarks/<script>`` of ``tree``; return the cases of the result file it wrote."""
    results = os.path.join(tree, "benchmarks", "results")
    started = time.time()
    env = {**os.environ, "PYTHONPATH": tree}
    subprocess.run([sys.executable, os.path.join(tree, "benchmarks", script), *script_args], cwd=tree, env=env, check=True)
    written = [p for p in glob.glob(os.path.join(results, "*.json")) if os.path.getmtime(p) >= started]
    if len(written) != 1:
        raise RuntimeError(f"{script} in {tree} wrote {len(written)} result files, expected 1: {written}")
    with open(written[0]) as handle:
        return json.load(handle)["cases"]


def _key(case):
    return json.dumps({k: v for k, v in case.items() if k not in MEASURED}, sort_keys=True)


def compare(base_runs, head_runs):
    """Per case and peer: the median ratio at base and at head, and head / base."""
    rows = []
    for key in dict.fromkeys(_key(c) for c in head_runs[0] if c.get("lowered", True)):
        for peer in next(c for c in head_runs[0] if _key(c) == key)["ratios"]:

            def median(runs, key=key, peer=peer):
                values = [c["ratios"][peer] for cases in runs for c in cases if _key(c) == key and peer in c.get("ratios", {})]
                return statistics.median(values) if values else float("nan")

            base, head = median(base_runs), median(head_runs)
            rows.append({"case": json.loads(key), "peer": peer, "base": base, "head": head, "head_over_base": head / base})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--rounds", type=int, default=1, help="runs per commit, alternating (default 1)")
    parser.add_argument("script", help="a benchmark in benchmarks/, e.g. bench_layers.py")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args(argv)
    base_rev, head_rev = _git("rev-parse", args.base), _git("rev-parse", "HEAD")
    with tempfile.TemporaryDirectory() as scratch:
        base_tree = os.path.join(scratch, "base")
        _git("worktree", "add", "--detach", base_tree, base_rev)
        try:
            base_runs, head_runs = [], []
            for round_ in range(args.rounds):
                order = [(base_tree, base_runs), (ROOT, head_runs)]
                for tree, runs in order if round_ % 2 == 0 else order[::-1]:
                    runs.append(_run(tree, args.script, args.script_args))
        finally:
            _git("worktree", "remove", "--force", base_tree)
    rows = compare(base_runs, head_runs)
    print(f"\n{'case':<44} {'peer':<12} {'base':>8} {'head':>8} {'head/base':>9}")
    for row in rows:
        case = " ".join(f"{v}" for v in row["case"].values())
        print(f"{case:<44} {row['peer']:<12} {row['base']:>7.2f}x {row['head']:>7.2f}x {row['head_over_base']:>9.3f}")
    name = "compare_" + os.path.splitext(args.script)[0] + ("_" + "_".join(a.strip("-") for a in args.script_args) if args.script_args else "")
    payload = {"base": base_rev, "head": head_rev, "rounds": args.rounds, "script": [args.script, *args.script_args], "rows": rows}
    print("wrote", write_results(name, payload), f"(results of this tree's runs are in {RESULTS_DIR})")


if __name__ == "__main__":
    main()
