"""The papers' schedule and protocol in ours: the CKConv plateau (factor, patience, a separate stop), the new
settings' place in the run id, `--selection paper` (all training data, the best test over epochs) and its mark
in the paper tables, input dropout and kernel dropout."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace

import pytest
import torch

import bench.run.protocol as protocol
import methods
from bench.base import UserError
from bench.cli import main
from bench.papers import all_tables, get_suite
from bench.papers.ckconv import plateau
from bench.report.paper_tables import build, marks, notes, row_of
from bench.report.reference import load_reference
from bench.run import store
from bench.run.config import PROTOCOL_VERSION, RunConfig, TrainConfig, parse_overrides
from bench.run.grid import build_grid
from datasets import get_dataset
from methods.task import TaskSpec

TINY = {"arch": "flexnet3", "width": 4, "dropout": 0.0}


@pytest.fixture()
def scripted_test_metric(monkeypatch):
    """Validation metrics that follow a script, so the plateaus are known in advance."""
    real = protocol.evaluate

    def install(data, script: list[float]):
        calls = {"n": 0}

        def evaluate(model, dataset, metric, batch_size, device, autocast, **kw):
            out = real(model, dataset, metric, batch_size, device, autocast, **kw)
            if dataset is data.val and calls["n"] < len(script):
                out["metric"], calls["n"] = script[calls["n"]], calls["n"] + 1
            return out

        monkeypatch.setattr(protocol, "evaluate", evaluate)

    return install


def _train(data, **train):
    tc = TrainConfig(batch_size=64, max_steps_per_epoch=1, warmup_epochs=0, min_lr_factor=1.0, lr=1e-2, **train)
    return protocol.train_run(RunConfig("conv", "digits", 0, TINY, {}, tc), data, "cpu", progress=False)


def torch_plateau_lrs(metrics: list[float], patience: int, stop_after: int) -> list[float]:
    """The lr of each epoch under torch's ReduceLROnPlateau(mode="max", factor=1/5) and the CKConv trainer's stop
    after `stop_after` epochs without improvement (dwromero/ckconv trainer.py), relative to the first."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.2, patience=patience)
    lrs, best, no_improvement = [], -1.0, 0
    for m in metrics:
        lrs.append(opt.param_groups[0]["lr"])
        best, no_improvement = (m, 0) if m > best else (best, no_improvement + 1)
        sched.step(m)
        if no_improvement == stop_after:
            break
    return lrs


def test_the_ckconv_plateau_is_torchs_reduce_on_plateau_with_its_own_stop(scripted_test_metric):
    """plateau(p) cuts the lr by 5 exactly where ReduceLROnPlateau(patience=p) does, keeps cutting after cuts,
    and stops after `stop_patience` epochs without improvement (not when a cut count is spent)."""
    data = get_dataset("digits")
    script = [90.0, 91.0, 92.0, 92.0, 92.0, 92.0, 93.0, 92.0, 92.0, 92.0, 92.0, 92.0, 92.0, 92.0, 92.0, 92.0]
    scripted_test_metric(data, script)
    settings = {**plateau(2), "stop_patience": 7}
    r = _train(data, epochs=len(script), **{k: v for k, v in settings.items() if k != "min_lr_factor"})
    ours = [h["lr"] / 1e-2 for h in r["history"]]
    expected = torch_plateau_lrs(script, patience=2, stop_after=7)
    assert ours == pytest.approx(expected)
    assert r["epochs_run"] == 14 and r["best_epoch"] == 6 and r["stopped_early"]
    assert r["lr_decays"] == 3 and min(ours) == pytest.approx(0.2**3)  # three cuts, each by 1/5


def test_without_stop_patience_the_spent_decays_still_stop_the_run(scripted_test_metric):
    data = get_dataset("digits")
    scripted_test_metric(data, [10.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0])
    r = _train(data, epochs=8, patience=2, lr_decays=1, lr_decay_factor=0.5)
    assert r["epochs_run"] == 6 and r["lr_decays"] == 1  # best 1, cut after 3, stop after 5
    assert [h["lr"] for h in r["history"]] == pytest.approx([1e-2] * 4 + [5e-3] * 2)


def test_new_settings_are_checked_and_reach_set():
    for bad, match in (({"lr_decay_factor": 1.0}, "lr_decay_factor"), ({"stop_patience": -1}, "stop_patience"),
                       ({"selection": "test"}, "selection")):  # fmt: skip
        with pytest.raises(UserError, match=match):
            TrainConfig(**bad).validate()
    got = parse_overrides(["train.lr_decay_factor=0.2", "train.stop_patience=100", "train.selection=paper"])
    assert got["train"] == {"lr_decay_factor": 0.2, "stop_patience": 100, "selection": "paper"}


def test_new_settings_at_their_defaults_leave_every_run_id_as_it_was():
    """A run id hashes the config without the settings added for the papers, so no finished run is orphaned."""
    cfg = RunConfig("conv", "digits", 1, {"width": 8}, {}, TrainConfig(epochs=3, patience=2, lr_decays=1))
    old = asdict(cfg)
    for key in ("lr_decay_factor", "stop_patience", "selection", "compile"):
        del old["train"][key]
    old["tags"] = list(old["tags"])
    del old["search"]
    blob = json.dumps({"protocol": PROTOCOL_VERSION, **old}, sort_keys=True, default=str)
    assert cfg.run_id == hashlib.sha256(blob.encode()).hexdigest()[:16]
    paper = replace(cfg, train=replace(cfg.train, selection="paper", lr_decay_factor=0.2, stop_patience=9))
    assert paper.run_id != cfg.run_id and RunConfig.from_dict(paper.to_dict()) == paper


# -- --selection paper ----------------------------------------------------------------------------------


def test_the_paper_protocol_trains_on_all_training_data_and_validates_on_test():
    carved, whole = get_dataset("digits"), get_dataset("digits", hold_out=False)
    assert len(whole.train) == len(carved.train) + len(carved.val)
    assert whole.val is whole.test and "test set" in whole.info["validation"]
    # normalised with the statistics of all the training data, not of the carved part
    assert whole.info["standardised"] != carved.info["standardised"]


def test_a_dataset_with_its_own_validation_split_keeps_it_under_the_paper_protocol(monkeypatch):
    """As the papers' Speech Commands runs: select on the dataset's validation split, test once."""
    import datasets
    from datasets.splits import carve_validation

    entry = datasets.get_entry("digits")
    real = entry.obj

    def with_own_val(**kwargs):
        loaded = real(**kwargs)
        loaded.train, loaded.val = carve_validation(loaded.train, 0.2, 7)
        return loaded

    monkeypatch.setattr(entry, "obj", with_own_val)
    whole = get_dataset("digits", hold_out=False)
    assert whole.val is not whole.test and "validation" not in whole.info
    ours = get_dataset("digits")  # the default uses the same own split: nothing carved either way
    assert (len(whole.train), len(whole.val)) == (len(ours.train), len(ours.val))


def test_paper_selection_reports_the_best_test_accuracy_over_epochs(tmp_path):
    out = tmp_path / "out"
    argv = ["--suite", "smoke", "--methods", "conv", "--datasets", "digits", "--epochs", "4", "--out", str(out),
            "--no-report", "--quiet", "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--selection", "paper"]) == 0
    (rec,), _ = store.load_runs(out)
    assert rec["config"]["train"]["selection"] == "paper"
    best_test = max(h["val"] for h in rec["history"])  # the validation set is the test set
    assert rec["test_accuracy"] == pytest.approx(best_test) and rec["val_accuracy"] == rec["test_accuracy"]
    assert main(argv) == 0  # the default: a run of its own (another id), selected on the carved split
    records, _ = store.load_runs(out)
    default = next(r for r in records if "selection" not in r["config"]["train"])
    assert default["run_id"] != rec["run_id"]


def test_tuning_refuses_the_paper_selection():
    with pytest.raises(UserError, match="selection"):
        build_grid(get_suite("smoke"), methods_sel=["conv"], datasets_sel=["digits"],
                   overrides={"train": {"selection": "paper"}, "model": {}, "data": {}},
                   tune={"train.lr": [1e-3, 1e-2]})  # fmt: skip


def _record(cfg: RunConfig, test: float) -> dict:
    return {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": cfg.method, "dataset": cfg.dataset,
            "seed": cfg.seed, "tags": list(cfg.tags), "status": "ok", "metric": "accuracy", "test_accuracy": test,
            "params": 1000}  # fmt: skip


def test_paper_protocol_rows_stand_beside_ours_marked_and_the_caption_says_which_is_which():
    table = next(t for t in all_tables() if t.key == "flexconv-t3")
    (cfg,) = build_grid(get_suite("flexconv-cifar"), methods_sel=["flexconv"], seeds=(0,)).runs
    paper = replace(cfg, train=replace(cfg.train, selection="paper"))
    rec_val, rec_paper = _record(cfg, 91.0), _record(paper, 92.5)
    assert marks(rec_val, row_of(table, rec_val), "flexconv-cifar") == []
    assert marks(rec_paper, row_of(table, rec_paper), "flexconv-cifar") == ["paper protocol"]
    built = build(table, [rec_val, rec_paper], load_reference())
    assert "FlexNet-7" in built.rows and "FlexNet-7 [paper protocol]" in built.rows
    assert built.base["FlexNet-7 [paper protocol]"] == "FlexNet-7"  # beside the published number
    caption = " ".join(notes(built))
    assert "best validation accuracy" in caption and "[paper protocol]" in caption and "best test accuracy" in caption
    only_paper = " ".join(notes(build(table, [rec_paper], load_reference())))
    assert "best validation accuracy" not in only_paper and "the papers' protocol" in only_paper


def test_preset_runs_stand_in_their_papers_tables_unmarked():
    """The 1M CKCNN and FlexTCN-4 presets land on their paper rows, checked against their own suite's settings."""
    for suite, key, label in (("ckcnn-1m", "ckconv-seq", "CKCNN (1M)"), ("flextcn4", "flexconv-t1", "FlexTCN-4"),
                              ("flextcn4", "flexconv-t2", "FlexTCN-4")):  # fmt: skip
        table = next(t for t in all_tables() if t.key == key)
        cfgs = [c for c in build_grid(get_suite(suite), seeds=(0,)).runs if c.dataset in table.columns]
        assert cfgs
        records = [_record(c, 90.0) for c in cfgs]
        built = build(table, records, load_reference())
        assert label in built.rows and not any(label + " [" in r for r in built.rows), built.rows
        assert all(built.cells[(label, table.columns[c.dataset], "accuracy")].n == 1 for c in cfgs)


# -- input dropout, kernel dropout ---------------------------------------------------------------------------

SEQ = TaskSpec(dim=1, in_channels=1, num_classes=10, size=64, causal=True)


def test_dropout_in_drops_input_elements_in_training_only():
    plain = methods.build_model("ckconv", SEQ, arch="ckcnn", width=4)
    model = methods.build_model("ckconv", SEQ, arch="ckcnn", width=4, dropout_in=0.5)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    first = model.features[0]
    assert isinstance(first, torch.nn.Dropout) and first.p == 0.5
    assert not isinstance(plain.features[0], torch.nn.Dropout)  # off by default: the model is unchanged
    x = torch.ones(2, 1, 64)
    model.train()
    dropped = first(x)
    assert 0.3 < (dropped == 0).float().mean() < 0.7 and dropped.max() == pytest.approx(2.0)
    model.eval()
    torch.testing.assert_close(first(x), x)
    with pytest.raises(UserError, match="dropout_in"):
        methods.build_model("ckconv", SEQ, arch="ckcnn", width=4, dropout_in=1.0)


def test_weight_dropout_drops_sampled_kernel_entries_in_training(monkeypatch):
    import methods.ckconv as ckconv_module

    conv = methods.get_method("ckconv").obj(4, 4, dim=1, causal=True, size=32, weight_dropout=0.5)
    seen, original = [], ckconv_module.conv_with_kernel

    def spy(x, kernel, bias, causal):
        seen.append(kernel.detach().clone())
        return original(x, kernel, bias, causal=causal)

    monkeypatch.setattr(ckconv_module, "conv_with_kernel", spy)
    x = torch.randn(2, 4, 32)
    conv.train()
    conv(x)
    conv.eval()
    with torch.no_grad():
        conv(x)
    train_kernel, eval_kernel = seen
    zero = train_kernel == 0
    assert 0.3 < zero.float().mean() < 0.7
    torch.testing.assert_close(train_kernel[~zero], 2 * eval_kernel[~zero], rtol=1e-4, atol=1e-5)
    assert (eval_kernel != 0).all()


def test_a_1m_ckcnn_made_by_width_alone_is_marked_where_it_differs_from_the_preset():
    """`--suite ckconv-seq --set model.width=100` keeps the 100k model's dropout and omega_0: not the paper's 1M."""
    table = next(t for t in all_tables() if t.key == "ckconv-seq")
    (cfg,) = build_grid(get_suite("ckconv-seq"), datasets_sel=["smnist"], seeds=(0,),
                        overrides={"train": {}, "model": {"width": 100}, "data": {}}).runs  # fmt: skip
    built = build(table, [_record(cfg, 99.0)], load_reference())
    (label,) = [r for r, _, _ in built.cells]
    assert label.startswith("CKCNN (1M) [") and "dropout=0.1" in label and "omega_0=31.09" in label
    assert built.base[label] == "CKCNN (1M)"  # beside the paper's number, but marked
