import pytest

from bench.cli import main

from conftest import run_cli


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--methods", "cnov"], "Did you mean conv"),
        (["--datasets", "digts"], "Did you mean digits"),
        (["--suite", "cpuu"], "Did you mean cpu"),
        (["--set", "train.lrr=0.1"], "Did you mean train.lr"),
        (["--set", "train.epochs=ten"], "expected int"),
        (["--set", "train.lr=-1"], "lr must be > 0"),
        (["--set", "model.nonsense=1"], "takes 'nonsense'"),
        (["--set", "oops"], "section.key=value"),
        (["--epochs", "-3"], "--epochs must be >= 1"),
        (["--epochs", "three"], "invalid int value"),
        (["--device", "tpu"], "unknown device"),
        (["--seeds", "a-b"], "--seeds expects"),
        (["--methods", "zzz*"], "no method matches"),
        (["--plugin", "does/not/exist.py"], "no such file"),
        (["--plugin", "no_such_module_xyz"], "cannot import"),
        (["bogus-command"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main([*args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_plugin_that_fails_to_import_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert main(["--plugin", str(bad), "--dry-run"]) == 2
    assert "failed to import: RuntimeError: boom" in capsys.readouterr().err


def test_dry_run_prints_the_grid(capsys):
    assert main(["--methods", "conv", "--datasets", "digits,sdigits", "--seeds", "0-2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 runs" in out and out.count("conv ") == 6


def test_subprocess_exit_status_and_no_traceback():
    proc = run_cli("--datasets", "nope", "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.startswith("run_all.py: error: unknown dataset 'nope'") and "Traceback" not in proc.stderr


def test_list_shows_methods_datasets_and_suites(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "conv33" in out and "1 x 8 x 8" in out and "cpu-full" in out


def test_fetch_loads_the_named_datasets(capsys):
    assert main(["fetch", "--datasets", "digits,sdigits"]) == 0
    out = capsys.readouterr().out
    assert "digits       ok: 1294 train, 144 val, 359 test" in out and "sdigits" in out
