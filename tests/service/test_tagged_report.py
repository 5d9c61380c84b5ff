"""`bazkhord report --tagged`: the theme report of a `tag-batch --statements` folder is the report of the file it
tagged; large themes are clustered on a sample and the rest assigned, in this process or as Ray tasks alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bazkhord.cli import main
from bazkhord.data.errors import DataError
from bazkhord.data.readers import read_records
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.model.themes.report import ThemeReport
from bazkhord.service.batch import JOB_FILE, BatchJob, read_tagged, run_local
from bazkhord.service.theme_report import report_dict
from tests.conftest import SAMPLE


def same_report(report: ThemeReport) -> dict[str, Any]:
    """The report without the text of its quotes (of two statements with the same words, «شیشه اش» and «شیشه‌اش», the
    one quoted may differ with the last bits of a float: seen twice in one process, not caused by the parts) and
    without the out-of-domain check."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ([len(v)] if k == "quotes" else strip(v)) for k, v in value.items()}
        return [strip(v) for v in value] if isinstance(value, list) else value

    values = strip(report_dict(report))
    # Parts keep statements, not the comments' text: the out-of-domain check is the file's report's alone.
    values.pop("domain_shift")
    return values  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def tfidf_themes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAZKHORD_ENCODER", "none")  # the clustering under test, not the encoder's vectors


@pytest.fixture
def tagged(sample_model: LoadedModel, tmp_path: Path) -> Path:
    out = tmp_path / "tagged"
    run_local(BatchJob([SAMPLE], out, str(sample_model.folder), tmp_path, part_rows=500, statements=True))
    return out


def test_the_report_of_tagged_parts_is_the_report_of_the_file(sample_model: LoadedModel, tagged: Path) -> None:
    job, comments = read_tagged(tagged)
    direct = ThemeAnalyzer(sample_model.tagger).analyse(read_records(SAMPLE).records)
    from_parts = ThemeAnalyzer(sample_model.tagger).analyse_tagged(comments)
    assert same_report(from_parts) == same_report(direct)
    assert len(direct.themes) >= 5 and job["finished"]["rows"] == len(comments.records) == 1300
    # the driver holds only the statements that may be complaints; the others are counted
    assert len(comments.statements) < comments.statement_count == direct.totals.statements
    assert all(record.text == "" for record in comments.records)
    # zero-shot aspects (another domain's taxonomy) are set on the report's copies, not on the statements read
    before = [(st.aspects, st.complaint) for st in comments.statements]
    foreign = ThemeAnalyzer(sample_model.tagger, ThemeSettings(taxonomy="food_delivery")).analyse_tagged(comments)
    assert foreign.settings["aspects"] == "zero-shot"
    assert [(st.aspects, st.complaint) for st in comments.statements] == before


def test_large_themes_are_clustered_on_a_sample_and_every_statement_placed(sample_model: LoadedModel,
                                                                          tagged: Path) -> None:
    _, comments = read_tagged(tagged)
    analyzer = ThemeAnalyzer(sample_model.tagger, ThemeSettings(max_cluster_statements=100))
    report = analyzer.analyse_tagged(comments)
    whole = ThemeAnalyzer(sample_model.tagger).analyse_tagged(comments)
    assert any(note.startswith("clustered on samples: 100 of ") for note in report.notes)
    assert not any(note.startswith("clustered on samples") for note in whole.notes)
    # aspect themes are the same statements; their sub-themes, and the emerging themes, come from the sample
    assert [(t.id, t.statements) for t in report.themes if t.kind == "aspect"] == \
           [(t.id, t.statements) for t in whole.themes if t.kind == "aspect"]
    sampled = [t for t in report.themes if t.kind == "aspect" and t.statements > 100]
    assert sampled
    for theme in sampled:
        members = [m for m in analyzer.membership_ if m.theme_id == theme.id]
        assert len(members) == theme.statements
        assert sum(sub.statements for sub in theme.subthemes) <= theme.statements
        assert len(theme.subthemes) >= 2 and all(sub.quotes for sub in theme.subthemes) and theme.keyphrases


def test_cli_report_of_a_tagged_folder_and_its_errors(sample_model: LoadedModel, tagged: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--tagged", str(tagged), "--out", str(tmp_path / "report"), "-q"]) == 0
    assert "1300 comments" in capsys.readouterr().out
    assert json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))["themes"]

    plain = tmp_path / "plain"
    run_local(BatchJob([SAMPLE], plain, str(sample_model.folder), tmp_path, part_rows=500))
    assert main(["report", "--tagged", str(plain), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "tagged without --statements" in err and "Traceback" not in err

    job = json.loads((tagged / JOB_FILE).read_text(encoding="utf-8"))
    del job["finished"]  # as a stopped run leaves it
    (tagged / JOB_FILE).write_text(json.dumps(job), encoding="utf-8")
    with pytest.raises(DataError, match="has not finished"):
        read_tagged(tagged)
    assert main(["report", "--tagged", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r3")]) == 2
    assert "no _job.json" in capsys.readouterr().err
    assert main(["report", "--tagged", str(tagged), "--out", str(tmp_path / "r4"), "--max-cluster-statements", "5"]) == 2
    assert "max_cluster_statements must be at least 100" in capsys.readouterr().err
    assert main(["report", "--input", str(SAMPLE), "--out", str(tmp_path / "r5"), "--engine", "ray"]) == 2
    assert "apply to --tagged" in capsys.readouterr().err


def test_the_model_must_be_the_one_that_tagged(sample_model: LoadedModel, tagged: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from tests.service.helpers import clone_version

    other = clone_version(sample_model.folder, "20990102-000000")
    try:
        assert main(["report", "--tagged", str(tagged), "--model", str(other), "--out", str(tmp_path / "r")]) == 2
    finally:
        shutil.rmtree(other)  # the session's model folder is shared with other tests
    assert "was tagged by" in capsys.readouterr().err


@pytest.mark.usefixtures("ray_sessions")
def test_on_ray_tagging_and_assignment_give_the_local_report(sample_model: LoadedModel, tagged: Path,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'bazkhord[ray]')")
    import ray

    from bazkhord.service.batch import ray_mapper, ray_session, run_ray
    from tests.service.test_batch import read_parts

    settings = ThemeSettings(max_cluster_statements=100)
    with ray_session(None, 2):
        run_ray(BatchJob([SAMPLE], tmp_path / "ray", str(sample_model.folder), tmp_path, part_rows=500,
                         batch_size=128, statements=True), cpus=2)
        _, comments = read_tagged(tmp_path / "ray")
        ray_analyzer = ThemeAnalyzer(sample_model.tagger, settings, mapper=ray_mapper(ray))
        on_ray = ray_analyzer.analyse_tagged(comments)
    assert not ray.is_initialized()
    assert read_parts(tmp_path / "ray") == read_parts(tagged)
    local_analyzer = ThemeAnalyzer(sample_model.tagger, settings)
    local = local_analyzer.analyse_tagged(read_tagged(tagged)[1])
    assert same_report(on_ray) == same_report(local)
    assert any(n.startswith("clustered on samples") for n in on_ray.notes)
    # every statement in the same theme and sub-theme, whether Ray's workers or this process assigned it
    assert [(m.comment_id, m.start, m.theme_id, m.subtheme) for m in ray_analyzer.membership_] == \
           [(m.comment_id, m.start, m.theme_id, m.subtheme) for m in local_analyzer.membership_]
