"""xdshub publish: named studies now (replacing the previous manifest), or the due ones (--once)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from hub.cli import main
from hub.settings import load_settings
from tests.factories.dicom import make_study, write_instance

ISSUER = "1.3.6.1.4.1.21367.2026.77"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _hub_with_a_study(tmp_path: Path, quiet: int) -> tuple[Path, str]:
    data_dir = tmp_path / "var"
    assert run("init", "--data-dir", str(data_dir)).exit_code == 0
    toml = data_dir / "hub.toml"
    toml.write_text(toml.read_text().replace("publish_quiet_seconds = 300", f"publish_quiet_seconds = {quiet}"))
    assert load_settings(data_dir, environ={}).publish_quiet_seconds == quiet
    assert run("org", "add", "Org A", "--oid", "1.2.3.4.5", "--data-dir", str(data_dir)).exit_code == 0
    study = make_study(n_series=1, per_series=2, patient_id="P1", issuer=ISSUER)
    folder = tmp_path / "study"
    folder.mkdir()
    for n, dataset in enumerate(study):
        write_instance(dataset, folder / f"{n}.dcm")
    imported = run("import", str(folder), "--org", "1.2.3.4.5", "--data-dir", str(data_dir))
    assert imported.exit_code == 0, imported.output
    return data_dir, str(study[0].StudyInstanceUID)


def test_publish_named_studies_then_again_replacing(tmp_path: Path) -> None:
    data_dir, study = _hub_with_a_study(tmp_path, 300)
    first = run("publish", study, "--data-dir", str(data_dir))
    assert first.exit_code == 0 and "(2 instances)" in first.output, first.output
    second = run("publish", study, "--data-dir", str(data_dir))
    assert second.exit_code == 0 and "replacing urn:uuid:" in second.output
    unknown = run("publish", "1.2.3.404", "--data-dir", str(data_dir))
    assert unknown.exit_code == 1 and "holds no instance of study 1.2.3.404" in unknown.output


def test_once_publishes_what_is_due_and_only_once(tmp_path: Path) -> None:
    data_dir, study = _hub_with_a_study(tmp_path, 1)
    import time

    time.sleep(1.1)   # the quiet period of one second passes
    first = run("publish", "--once", "--data-dir", str(data_dir))
    assert first.exit_code == 0 and f"of study {study}" in first.output, first.output
    assert run("publish", "--once", "--data-dir", str(data_dir)).output == ""


def test_publish_needs_exactly_one_thing_to_do(tmp_path: Path) -> None:
    data_dir, study = _hub_with_a_study(tmp_path, 300)
    for args in ([], ["--once", "--watch"], [study, "--once"]):
        result = run("publish", *args, "--data-dir", str(data_dir))
        assert result.exit_code == 1 and "one of the three" in result.output
