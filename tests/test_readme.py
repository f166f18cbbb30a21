"""The README's plugin example is run exactly as written."""

import re

from bench.run import store

from conftest import REPO, run_cli


def test_readme_plugin_example_runs_as_written(tmp_path):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- plugin-example:start -->\n```python\n(.*?)```\n<!-- plugin-example:end -->", readme, re.S)
    assert block, "the README lost its plugin example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 15
    plugin = tmp_path / "my_method.py"
    plugin.write_text(code)
    command = re.search(r"python run_all.py --plugin my_method.py (.*)\n", readme).group(1).split()
    proc = run_cli("--plugin", str(plugin), *command, "--suite", "smoke", "--out", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    records, _ = store.load_runs(tmp_path / "out")
    assert {(r["method"], r["status"]) for r in records} == {("my_sepconv", "ok"), ("conv", "ok")}


def test_readme_dataset_example_runs_as_written(tmp_path):
    readme = (REPO / "README.md").read_text()
    block = re.search(
        r"<!-- dataset-example:start -->\n```python\n(.*?)```\n<!-- dataset-example:end -->", readme, re.S
    )
    assert block, "the README lost its dataset example"
    assert len(block.group(1).strip().splitlines()) <= 15
    plugin = tmp_path / "my_dataset.py"
    plugin.write_text(block.group(1))
    command = re.search(r"python run_all.py --plugin my_dataset.py (.*)\n", readme).group(1).split()
    out = tmp_path / "out"
    proc = run_cli("--plugin", str(plugin), *command, "--suite", "smoke", "--seeds", "0", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    records, _ = store.load_runs(out)
    assert {(r["dataset"], r["method"], r["status"]) for r in records} == {("my_sines", "conv", "ok"),
                                                                            ("my_sines", "flexconv", "ok")}  # fmt: skip
    assert {r["task"]["size"] for r in records} == {64} and {r["task"]["num_classes"] for r in records} == {4}


def test_readme_paper_example_is_found_by_the_catalogue(tmp_path, monkeypatch):
    import sys

    import bench.papers
    from bench.cli import main

    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- paper-example:start -->\n```python\n(.*?)```\n<!-- paper-example:end -->", readme, re.S)
    assert block, "the README lost its paper example"
    (tmp_path / "mypaper.py").write_text(block.group(1))
    monkeypatch.setattr(bench.papers, "__path__", [*bench.papers.__path__, str(tmp_path)])
    try:
        assert bench.papers.get_suite("mypaper").datasets == ("cifar10",)
        assert "mypaper-t1" in {t.key for t in bench.papers.all_tables()}
        assert main(["--suite", "mypaper", "--dry-run", "--seeds", "0"]) == 0  # its grid builds: 2 runs
    finally:
        sys.modules.pop("bench.papers.mypaper", None)
