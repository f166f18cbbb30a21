import subprocess
import sys
import textwrap

import pytest
import torch

import datasets
import methods
from bench.base import Registry, UserError
from datasets import Loaded
from datasets.tensors import tensor_dataset
from methods.task import TaskSpec

from conftest import REPO


def test_importing_methods_imports_no_method_code():
    code = "import sys, methods, datasets; print(sorted(m for m in sys.modules if m.startswith(('methods.', 'datasets.'))))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    loaded = eval(out)
    assert "methods.conv" not in loaded and "datasets.digits" not in loaded
    assert "conv" in methods.list_methods()  # known by name all the same


def test_get_imports_lazily_and_builds():
    entry = methods.get_method("conv")
    assert entry.origin == "methods.conv" and entry.card.kind == "layer"


def test_name_collisions_raise():
    reg = Registry("thing", "lksbench.test_group", {"lazy_one": "some.module"})
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(lambda: 2)
    with pytest.raises(ValueError, match="built-in"):
        reg.register("lazy_one")(lambda: 3)


def test_builtin_name_cannot_be_taken_by_a_plugin():
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method("conv")(lambda *a, **k: None)


def test_list_with_glob_and_did_you_mean():
    assert methods.list_methods("conv*") == ["conv", "conv33"]
    with pytest.raises(UserError, match="Did you mean conv"):
        methods.get_method("cnov")


def test_bad_card_field_is_rejected():
    with pytest.raises(ValueError, match="unknown method-card field"):
        methods.register_method("x_bad_card", descripton="typo")


def test_entry_point_plugin_is_discovered(tmp_path):
    """A package installed with an `lksbench.methods` entry point appears with no change here."""
    pkg = tmp_path / "site"
    (pkg / "ep_plugin").mkdir(parents=True)
    (pkg / "ep_plugin" / "__init__.py").write_text(
        textwrap.dedent("""
        from methods import register_method
        from methods.conv import Conv

        @register_method("ep_conv", description="from an entry point")
        def ep_conv(cin, cout, *, dim, causal, size):
            return Conv(cin, cout, 5, dim, causal)
    """)
    )
    dist = pkg / "ep_plugin-0.1.dist-info"  # what pip leaves behind for an installed package
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lksbench.methods]\nep_plugin = ep_plugin\n")
    code = "import methods; print('ep_conv' in methods.list_methods(), methods.card_of('ep_conv').description)"
    env = {"PYTHONPATH": f"{pkg}:{REPO}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True from an entry point"


@pytest.fixture
def plugin_datasets():
    """Register test loaders; unregister them afterwards."""
    names = []

    def add(name, loader, **card):
        datasets.register_dataset(name, **card)(loader)
        names.append(name)

    yield add
    for name in names:
        datasets.DATASETS.unregister(name)


def sequences(length: int, given_task=None):
    x, y = torch.randn(40, 2, length, generator=torch.Generator().manual_seed(0)), torch.arange(40) % 3
    return Loaded(tensor_dataset(x, y), tensor_dataset(x[:10], y[:10]), given_task)


def test_the_task_comes_from_the_card_and_the_data(plugin_datasets):
    def loader(*, seed, data_root, length: int = 12):
        return sequences(length)

    plugin_datasets("t_card", loader, shape=(2, 12), classes=3, causal=True)
    assert datasets.get_dataset("t_card").task == TaskSpec(1, 2, 3, 12, causal=True)
    assert datasets.get_dataset("t_card", length=7).task == TaskSpec(1, 2, 3, 7, causal=True)  # the data's size
    assert datasets.get_entry("t_card").card.task_for({"length": 7}) == TaskSpec(1, 2, 3, 7, causal=True)
    assert datasets.shape_text("t_card") == "2 x 12 (option length)"


@pytest.mark.parametrize(
    "task, shape",
    [(TaskSpec(1, 2, 5, 12, causal=True), (2, 12)), (TaskSpec(1, 2, 3, 12), (2, 12)), (TaskSpec(2, 2, 3, 12), (2, 12)),
     (None, (2, 12, 12))],
    ids=["classes", "causal", "dim", "samples"],
)  # fmt: skip
def test_a_loader_that_disagrees_with_its_card_is_refused(plugin_datasets, task, shape):
    causal = len(shape) == 2
    plugin_datasets("t_wrong", lambda *, seed, data_root: sequences(12, task), shape=shape, classes=3, causal=causal)
    with pytest.raises(ValueError, match="t_wrong.*disagrees with its card"):
        datasets.get_dataset("t_wrong")


@pytest.mark.parametrize("card", [{"shape": "2 x 12"}, {"shape": (2,)}, {"shape": (2, 0)}, {"classes": 3}])
def test_a_card_without_a_shape_tuple_is_refused(card):
    with pytest.raises(ValueError, match="shape"):
        datasets.register_dataset("t_bad_shape", **card)


def test_loader_options_is_what_the_grid_and_get_dataset_accept(plugin_datasets):
    def loader(*, seed, data_root, sr: int = 1, mode="a", **more):
        return sequences(12)

    plugin_datasets("t_opts", loader, shape=(2, 12), classes=3)
    accepts = datasets.loader_options("t_opts")
    assert accepts.defaults == {"sr": 1, "mode": "a"} and accepts.annotations == {"sr": "int"}
    assert accepts.any_option and accepts.takes("anything") and datasets.shape_text("t_opts") == "2 x 12 (option sr)"
    strict = datasets.loader_options("mnist1d")
    assert strict.defaults == {"length": 40, "num_samples": 5000, "drop_rate": 0.0} and not strict.takes("sr")
    assert [datasets.shape_text(n) for n in ("cifar10", "digits", "sc_raw")] == [
        "3 x 32 x 32 (resolution)", "1 x 8 x 8", "1 x 16000 (option sr)"]  # fmt: skip


def test_hparams_of_reads_a_registered_class_its_comments_and_the_kwargs_it_passes_on():
    """One declaration: a layer class's __init__ gives names, annotations, defaults and (the comment ending the
    line) docs; a subclass that passes **kwargs on adds its parent's; a plain factory still works."""
    from torch import nn

    class Base(nn.Module):
        def __init__(
            self, cin, cout, *, dim, causal, size,
            k: int = 3,  # taps per side
            scale: float | None = None,  # a factor
        ):  # fmt: skip
            super().__init__()
            self.conv = nn.Conv1d(cin, cout, k, padding=k // 2)

        def forward(self, x):
            return self.conv(x)

    class Wider(Base):
        def __init__(self, cin, cout, *, k: int = 5, **kw):  # its k: no comment, Base's doc stands
            super().__init__(cin, cout, k=k, **kw)

    def any_hparams(cin, cout, *, dim, causal, size, **hp):
        return Base(cin, cout, dim=dim, causal=causal, size=size, **hp)

    try:
        assert methods.register_method("t_base", dims=(1,))(Base) is Base  # the class itself comes back
        methods.register_method("t_wider", dims=(1,))(Wider)
        methods.register_method("t_any", dims=(1,))(any_hparams)
        assert methods.hparams_of("t_base", backbone=False) == {
            "k": methods.Hparam("k", "int", 3, "taps per side"),
            "scale": methods.Hparam("scale", "float | None", None, "a factor"),
        }
        wider = methods.hparams_of("t_wider")
        assert (wider["k"].default, wider["k"].doc, wider["scale"].doc) == (5, "taps per side", "a factor")
        assert set(wider) == {"k", "scale", "arch", "width", "depth", "dropout", "dropout_in"}
        assert methods.hparams_of("t_any") is None and methods.accepted_hparams("t_any") is None
        model = methods.build_model("t_wider", methods.TaskSpec(1, 2, 3, 16), width=4)
        assert any(isinstance(m, Wider) and m.conv.kernel_size == (5,) for m in model.modules())
        with pytest.raises(UserError, match="does not take hyperparameter"):
            methods.build_model("t_base", methods.TaskSpec(1, 2, 3, 16), sigma=1.0)
    finally:
        for name in ("t_base", "t_wider", "t_any"):
            methods.METHODS.unregister(name)


def test_builtin_hparams_are_declared_once_with_docs():
    """FlexConv's variants: each declares its own set (SIREN: no input scale), Fourier its own default; ccnn's
    layer hparams come from the layer that declares them; every hparam of every method has a doc."""
    siren, fourier = methods.hparams_of("flexconv_siren"), methods.hparams_of("flexconv_fourier")
    assert "omega_0" in siren and "input_scale" not in siren and "antialias" not in siren
    assert fourier["input_scale"].default == 256.0 and methods.hparams_of("flexconv")["input_scale"].default == 25.6
    ccnn = methods.hparams_of("ccnn")
    assert ccnn["mask_lr_factor"].default == 1.0 and ccnn["blocks"].default == 4 and "CCNN" in ccnn["learn_mean"].doc
    assert "arch" not in ccnn  # a model method: no backbone
    assert [(n, k) for n in methods.list_methods() for k, h in methods.hparams_of(n).items() if not h.doc] == []


def test_the_old_card_form_says_how_to_write_the_new_one():
    with pytest.raises(ValueError, match=r"drop dim= and write e.g. shape=\(3, 32, 32\)"):
        datasets.register_dataset("t_old_form", dim=2, shape="3 x 32 x 32", classes=10)
