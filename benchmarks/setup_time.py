"""How long ``scripts/setup.sh`` takes on a fresh checkout, where the time goes, and a second run.

A fresh clone of this checkout's HEAD goes to a temporary directory (``--keep`` keeps it), then:
the whole ``scripts/setup.sh`` (the README's first command); a second ``scripts/setup.sh`` with
nothing changed; and, in the venv it made, its parts again, each alone: ``python -m venv``,
pip's resolution against the lock (``--dry-run``) side by side with the same resolution by the
pip that Python bundles (what ``setup.sh`` upgrades first, and why), and ``pip check``; then
why ``setup.sh`` compiles the venv itself: the job's libraries imported with the setup's
``.pyc`` files and with none (what ``--no-compile`` alone leaves a machine that sets
``PYTHONDONTWRITEBYTECODE``, every process, every time), and byte-compiling the venv on one
core (pip's way) and on every core (``compileall -j 0``, the setup's way). pip's download
cache is the user's: pass ``--no-cache`` for the figure of a machine that never downloaded the
wheels (downloads included). Targets: at most 2 minutes fresh, at most 5 s for the second run.

Run: ``.venv/bin/python benchmarks/setup_time.py [--no-cache] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIP = ("-m", "pip", "--disable-pip-version-check")


def timed(argv: list[str], cwd: Path, env: dict[str, str], *, failing: bool = False) -> float:
    """Seconds ``argv`` took; it must succeed unless ``failing`` (compileall exits 1 on the
    few modules written for a newer Python, which pip's own compile step skips)."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode and not failing:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def parts(checkout: Path, scratch: Path, env: dict[str, str]) -> dict[str, float]:
    """The fresh run's steps again, each alone, in the venv it made (``checkout/.venv``)."""
    python, bundled = str(checkout / ".venv" / "bin" / "python"), scratch / "venv"
    lead = "  of the fresh run:"
    out = {
        f"{lead} python -m venv alone": timed(
            [sys.executable, "-m", "venv", str(bundled)], checkout, env
        )
    }
    install = ["install", "--quiet", "-c", "constraints.txt", "-e", ".[local,dev]"]
    resolve = [*PIP, *install, "--dry-run", "--ignore-installed"]
    out[f"{lead} resolution, the lock's pip"] = timed([python, *resolve], checkout, env)
    out["  the same by Python's bundled pip"] = timed(
        [str(bundled / "bin" / "python"), *resolve], checkout, env
    )
    out[f"{lead} pip check"] = timed([python, *PIP, "check"], checkout, env)
    imports = [python, "-c", "import torch, transformers, peft, mlflow, datasets, trl"]
    out["the job's libraries, first import (compiled by setup)"] = timed(imports, checkout, env)
    bare = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(scratch / "none")}
    out["  the same with no .pyc, nothing kept"] = timed(imports, checkout, bare)
    site = str(next((checkout / ".venv" / "lib").glob("python3*/site-packages")))
    for cores, label in (("1", "one core, as pip does"), ("0", "every core, as setup.sh does")):
        compile_all = [python, "-m", "compileall", "-qq", "-f", "-j", cores, site]
        out[f"byte-compiling the venv, {label}"] = timed(compile_all, checkout, env, failing=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-cache", action="store_true", help="no pip download cache")
    parser.add_argument("--keep", action="store_true", help="keep the fresh checkout")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="setup-time-"))
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    if args.no_cache:
        env["PIP_CACHE_DIR"] = str(scratch / "pip-cache")
    checkout = scratch / "checkout"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True)
        figures = {"fresh scripts/setup.sh": timed(["scripts/setup.sh"], checkout, env)}
        figures["second run, nothing changed"] = timed(["scripts/setup.sh"], checkout, env)
        figures.update(parts(checkout, scratch, env))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()
    print(f"== scripts/setup.sh (load average {load[0]:.1f}, {os.cpu_count()} cores)")
    for name, seconds in figures.items():
        print(f"  {name:<56}{seconds:8.1f} s")
    print("  targets: fresh at most 120 s, second run at most 5 s")
    if args.keep:
        print(f"checkout kept: {checkout}")


if __name__ == "__main__":
    main()
