"""PhysioNet 2019 on fake `.psv` files in the challenge's format, and the binary AUC metric of the protocol."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from bench.base import UserError
from bench.run.config import RunConfig, TrainConfig
from bench.run.protocol import evaluate, roc_auc, train_run
from datasets import get_dataset
from datasets.physionet import CHANNELS, HOURS, MEASURED

COLUMNS = ["HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "EtCO2", "BaseExcess", "HCO3", "FiO2", "pH", "PaCO2",
           "SaO2", "AST", "BUN", "Alkalinephos", "Calcium", "Chloride", "Creatinine", "Bilirubin_direct", "Glucose",
           "Lactate", "Magnesium", "Phosphate", "Potassium", "Bilirubin_total", "TroponinI", "Hct", "Hgb", "PTT",
           "WBC", "Fibrinogen", "Platelets", "Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS",
           "SepsisLabel"]  # fmt: skip


def write_stay(path, hours, label_from=None, unit1=1.0, unit2=None, hr_shift=0.0, seed=0):
    """A stay with rows at `hours` (ICULOS); HR observed every hour, Temp every other, the rest never."""
    rng = np.random.default_rng(seed)
    lines = ["|".join(COLUMNS)]
    for h in hours:
        row = ["NaN"] * MEASURED
        row[0] = f"{80 + hr_shift + rng.normal():.2f}"
        if h % 2 == 0:
            row[2] = f"{37 + rng.normal(0, 0.3):.2f}"
        sepsis = int(label_from is not None and h >= label_from)
        statics = ["61.5", "1", "NaN" if unit1 is None else f"{unit1}", "NaN" if unit2 is None else f"{unit2}", "-0.03"]
        lines.append("|".join(row + statics + [str(h), str(sepsis)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def fake_physionet(root, n=40, positive_every=4):
    """n stays in setA/setB folders; every `positive_every`-th turns septic at hour 5 and has a higher heart rate."""
    folder = root / "physionet2019"
    for i in range(n):
        positive = i % positive_every == 0
        sub = "training_setA" if i < n // 2 else "training_setB"
        write_stay(folder / sub / f"p{i:06d}.psv", range(1, 10 + i % 5), label_from=5 if positive else None,
                   hr_shift=15.0 if positive else 0.0, seed=i)  # fmt: skip
    return folder


def test_loader_layout_labels_splits_and_normalisation(tmp_path):
    folder = fake_physionet(tmp_path)
    write_stay(folder / "training_setA" / "p900000.psv", [1, 2])  # 2 rows: dropped
    # hours beyond 72 are cut, a skipped hour is NaN, the label counts the kept rows only
    write_stay(folder / "training_setB" / "p900001.psv", [1, 2, 4, 73, 74], label_from=73, unit1=None, unit2=0.0)
    data = get_dataset("physionet2019", data_root=tmp_path)
    assert data.task.input_shape == (CHANNELS, HOURS) == (75, 72) and data.task.metric == "auc"
    assert data.task.causal and data.task.num_classes == 2
    sizes = [len(data.train), len(data.val), len(data.test)]
    assert (
        sum(sizes) == 41 and sizes == data.info["sizes"] and sizes[0] == int(0.7 * 41)
    )  # scikit-learn rounds the train part down
    labels = [int(s.tensors[1].sum()) for s in (data.train, data.val, data.test)]
    assert sum(labels) == 10 and min(labels) >= 1  # stratified: each split holds positives

    from datasets.physionet import inputs, read_psv

    values, statics, label = read_psv(folder / "training_setB" / "p900001.psv")
    assert label == 0  # the septic rows are after hour 72
    assert not np.isnan(values[0, [0, 1, 3]]).any() and np.isnan(values[0, 2]) and np.isnan(values[0, 4:]).all()
    # statics: Age, Gender, Unit1 (NaN -> 0), Unit2, HospAdmTime, Unit1 observed, Unit2 observed
    assert statics.tolist() == pytest.approx([61.5, 1.0, 0.0, 0.0, -0.03, 0.0, 1.0])
    x = inputs(values[None], statics[None])[0]
    assert x[0, :5].tolist() == [1, 2, 2, 3, 3]  # HR's intensity: the cumulative count of observations
    assert x[MEASURED + 2, :5].isnan().tolist() == [True, False, True, False, True]  # Temp at hours 2 and 4
    assert (x[2 * MEASURED :, :] == torch.tensor(statics)[:, None]).all()
    # normalised with the training part's observed steps, then NaN -> 0: train HR values have mean 0
    hr = data.train.tensors[0][:, MEASURED]
    observed = hr != 0  # NaN -> 0 after the standardisation; no measured value lands on 0 exactly here
    assert abs(float(hr[observed].double().mean())) < 1e-5 and not data.test.tensors[0].isnan().any()
    assert data.info["standardised"]["observed_only"]


def test_the_split_does_not_follow_the_run_seed_and_a_cache_serves_the_next_load(tmp_path):
    folder = fake_physionet(tmp_path)
    a = get_dataset("physionet2019", data_root=tmp_path, seed=0)
    assert (folder / "lksbench-cache.npz").exists()
    b = get_dataset("physionet2019", data_root=tmp_path, seed=3)
    assert torch.equal(a.test.tensors[0], b.test.tensors[0]) and torch.equal(a.test.tensors[1], b.test.tensors[1])
    write_stay(folder / "training_setA" / "p800000.psv", range(1, 8), seed=99)  # a new file: the cache is rebuilt
    assert sum(len(s) for s in get_dataset("physionet2019", data_root=tmp_path)[:3]) == 41


def test_missing_and_damaged_files_are_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no .psv files"):
        get_dataset("physionet2019", data_root=tmp_path)
    folder = fake_physionet(tmp_path)
    (folder / "training_setA" / "p000001.psv").write_text("HR|O2Sat\n1|2\n")
    with pytest.raises(UserError, match="p000001.psv"):
        get_dataset("physionet2019", data_root=tmp_path)


def test_roc_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounded: many ties
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    with pytest.raises(ValueError, match="both labels"):
        roc_auc(scores, np.zeros(300, dtype=int))


def test_evaluate_reports_the_auc_of_the_second_output():
    x = torch.randn(64, 3)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[1, 0] = 1.0  # the logit of label 1 grows with x[:, 0]: a perfect ranking
    data = torch.utils.data.TensorDataset(x, y)
    result = evaluate(model, data, "auc", 16, "cpu", contextlib.nullcontext)
    assert result["metric"] == pytest.approx(1.0)


def test_a_run_on_physionet_selects_on_validation_auc(tmp_path):
    fake_physionet(tmp_path, n=60)
    data = get_dataset("physionet2019", data_root=tmp_path)
    cfg = RunConfig("conv", "physionet2019", model={"arch": "flextcn2", "width": 4},
                    train=TrainConfig(epochs=3, batch_size=16, lr=1e-2, warmup_epochs=0))  # fmt: skip
    r = train_run(cfg, data, "cpu", progress=False)
    assert r["metric"] == "auc" and r["higher_is_better"]
    assert 0 <= r["test_auc"] <= 1 and r["val_auc"] == max(h["val"] for h in r["history"])
    assert "test_correct" not in r


def test_the_ckconv_physionet_suite_lands_in_its_paper_table_beside_the_published_auc(tmp_path):
    from bench.cli import main

    fake_physionet(tmp_path / "data", n=60)
    out = tmp_path / "out"
    args = ["--suite", "ckconv-physionet", "--epochs", "1", "--seeds", "0", "--data-root", str(tmp_path / "data"),
            "--out", str(out), "--quiet", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    table = (out / "tables" / "ckconv-physionet.md").read_text()
    paper = next(line for line in table.splitlines() if line.startswith("| CKCNN (100k) |"))
    row = next(line for line in table.splitlines() if line.startswith("| CKCNN (100k) [epochs=1] |"))  # marked
    assert "0.895" in paper and "0.895" in row  # the published AUC beside ours
    ours = re.search(r"\| (?:\*\*)?([01]\.\d{3}) \(1\)", row)  # three decimals, one run (bold: the best)
    assert ours and 0 <= float(ours.group(1)) <= 1
    assert "test AUC, at the checkpoint with the best validation AUC" in table
