import subprocess
import sys
import textwrap

import pytest

import methods
from bench.base import Registry, UserError

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
