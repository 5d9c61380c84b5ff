"""A normal install: the built wheel, installed outside the checkout, holds only `bazkhord.*` and every data file
the commands read (a file missing from the package data fails here, not on a user's machine)."""

from __future__ import annotations

import json
import subprocess
import zipfile

from tests.conftest import SAMPLE, InstalledWheel

ROOMS = ("data", "model", "training", "evaluation", "service", "cli", "benchmarks", "tests")


def run(wheel: InstalledWheel, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(wheel.python.parent / "bazkhord"), *args], cwd=wheel.cwd, capture_output=True,
                          text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "BAZKHORD_ENCODER": "none"})
    assert done.returncode == 0, f"bazkhord {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_installs_one_namespace(installed_wheel: InstalledWheel) -> None:
    names = zipfile.ZipFile(installed_wheel.wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"bazkhord", installed_wheel.wheel.name.split("-py3")[0] + ".dist-info"}
    assert "bazkhord/data/stopwords_fa.txt" in names and "bazkhord/service/migrations/versions/0001_initial.py" in names
    assert not any(name.startswith("bazkhord/benchmarks") for name in names)
    probe = f"import importlib.util as u, json; print(json.dumps([m for m in {ROOMS!r} if u.find_spec(m)]))"
    found = subprocess.run([str(installed_wheel.python), "-c", probe], cwd=installed_wheel.cwd, capture_output=True,
                           text=True, check=True).stdout
    assert json.loads(found) == []  # no generic top-level package a user's data.py could shadow


def test_train_tag_and_report_from_the_installed_wheel(installed_wheel: InstalledWheel) -> None:
    models = installed_wheel.cwd / "models"
    run(installed_wheel, "train", "--data", str(SAMPLE), "--name", "wheel", "--models-dir", str(models), "-q")
    tagged = run(installed_wheel, "tag", "wheel", "ارسال خیلی دیر بود و جعبه له شده بود", "--models-dir", str(models))
    assert json.loads(tagged.stdout)["sentiment"] == "negative"
    # No --model: the model trained last; the report reads the stopwords and taxonomies from the package.
    out = installed_wheel.cwd / "report"
    run(installed_wheel, "report", "--input", str(SAMPLE), "--out", str(out), "--models-dir", str(models), "-q")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["totals"]["comments"] > 1000 and report["themes"]
    assert (out / "report.html").exists()
