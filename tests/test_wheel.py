"""The distribution, installed like any Airflow provider: the built wheel goes into a fresh
virtualenv next to Airflow (Airflow and the other dependencies come from the project's
virtualenv through a .pth file; this project's code only from the wheel). With an empty plugins
folder and no plugins/ on PYTHONPATH, Airflow finds the provider and the UI plugin through their
entry points, and a whole night runs from a user's own DAG file whose spec names the built-in
program and Spark job: the regulator's HHI equals the plaintext HHI."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import demo
import pytest
import yaml
from conftest import small_parties
from localnet import outside_environ, run_dags_test, xcom

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "plugins", "include")  # what the wheel is built from
DATE = "2024-04-01"
NICE = ["nice", "-n", "10"]


def build_wheel(out: Path) -> Path:
    """The wheel of a clean copy of the sources (no build/ or egg-info left in the project).
    Without ``wheel`` or a setuptools that builds wheels itself in this virtualenv, pip fetches
    the build backend from the package registry (build isolation)."""
    src = out / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, src / name)
    import setuptools

    local = importlib.util.find_spec("wheel") is not None or int(setuptools.__version__.split(".")[0]) >= 71
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out / "dist")]
    subprocess.run(NICE + cmd + (["--no-build-isolation"] if local else []), check=True, cwd=out)
    [wheel] = (out / "dist").glob("*.whl")
    return wheel


def fresh_venv(root: Path, wheel: Path) -> Path:
    """A new virtualenv seeing the project's site-packages after its own, with the wheel installed;
    returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    shared = sysconfig.get_paths()["purelib"]
    # addsitedir: the shared site-packages' own .pth files apply too, after this venv's packages.
    (purelib / "zz_shared_site_packages.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
    )
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh venv's python, its site-packages, the wheel)."""
    root = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(root)
    python = fresh_venv(root / "venv", wheel)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return python, Path(purelib), wheel


def installed_env(python: Path, home: Path, dags: Path, plugins: Path) -> dict[str, str]:
    """An environment without this project on any path: the fresh venv first on PATH, no
    PYTHONPATH, the given (empty) plugins folder."""
    env = {k: v for k, v in outside_environ().items() if k != "PYTHONPATH"}
    env.update(
        {
            "PATH": f"{python.parent}{os.pathsep}{env['PATH']}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
    )
    return env


def airflow(python: Path, env: dict, *args: str, cwd: Path):
    return subprocess.run(
        NICE + [str(python), "-m", "airflow", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_wheel_holds_the_packages_under_names_that_cannot_collide(installed):
    _, _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"mpc_federation", "mpc_operators", "mpc_sensors", "mpc_ui"}, tops  # no top-level `sensors`
    for data in (
        "mpc_ui/templates/base.html",
        "mpc_ui/static/mpc.js",
        "mpc_sensors/triggers.py",
        "mpc_federation/_builtins/programs/hhi.py",
        "mpc_federation/_builtins/jobs/taxi_revenue.py",
        "mpc_federation/_builtins/jobs/mpc_job.py",
        "mpc_federation/_builtins/federations/taxi_hhi.yaml",
    ):
        assert data in names, data
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "provider_info = mpc_operators.provider:get_provider_info" in text
    assert "mpc_runs = mpc_ui.plugin:MPCRunsPlugin" in text


def test_airflow_finds_the_provider_and_plugin_through_entry_points(installed, tmp_path):
    python, purelib, _ = installed
    (tmp_path / "plugins").mkdir()
    (tmp_path / "dags").mkdir()
    env = installed_env(python, tmp_path / "home", tmp_path / "dags", tmp_path / "plugins")
    probe = (
        "import importlib.util, mpc_operators, mpc_sensors.triggers as t, mpc_ui\n"
        "from mpc_federation.builtins import builtin_path\n"
        "from mpc_federation.spec import load_spec\n"
        "from mpc_operators.settings import DEFAULT_SPEC_DIR\n"
        "print(mpc_operators.__file__); print(mpc_ui.__file__); print(builtin_path('program', 'hhi'))\n"
        "print(load_spec(DEFAULT_SPEC_DIR / 'taxi_hhi.yaml').aggregation_job)\n"
        "trigger = t.CoordinationTrigger(spec_path='s', party_id='p', run='r', stage='inputs',\n"
        "                                coordination_conn_id='c', deadline=1.0, cutoff=1.0)\n"
        "print(trigger.serialize()[0])\n"
        "print(importlib.util.find_spec('sensors'), importlib.util.find_spec('mpc_ui_plugin'))\n"
    )
    out = subprocess.run(
        [str(python), "-c", probe], env=env, cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    for path in out[:4]:  # the wheel's copy, not the project's; the shipped specs find the shipped job
        assert Path(path).is_relative_to(purelib), (path, purelib)
    assert out[3].endswith("/jobs/taxi_revenue.py")
    assert out[4] == "mpc_sensors.triggers.CoordinationTrigger"
    assert out[5] == "None None"

    providers = airflow(python, env, "providers", "list", "-o", "json", cwd=tmp_path)
    assert providers.returncode == 0, providers.stderr[-3000:]
    mine = [p for p in json.loads(providers.stdout) if p["package_name"] == "airflow-mpc-federation"]
    assert [p["version"] for p in mine] == ["0.2.0"], providers.stdout
    hooks = airflow(python, env, "providers", "hooks", "-o", "json", cwd=tmp_path)
    assert hooks.returncode == 0, hooks.stderr[-3000:]
    assert {
        "connection_type": "mpc_party_keys",
        "class": "mpc_operators.keys.PartyKeysHook",
        "conn_id_attribute_name": "mpc_party_keys_conn_id",
        "package_name": "airflow-mpc-federation",
        "hook_name": "MPC party keys",
    } in json.loads(hooks.stdout)
    config = airflow(python, env, "config", "get-value", "mpc", "party_id", cwd=tmp_path)
    assert config.returncode == 0, config.stderr[-3000:]  # the provider's [mpc] section is known
    config = airflow(python, env, "config", "get-value", "mpc", "wait_in_task", cwd=tmp_path)
    assert config.returncode == 0 and config.stdout.strip() == "near", config.stdout + config.stderr[-3000:]
    probe = (
        "import json\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "data = ProvidersManager().providers['airflow-mpc-federation'].data\n"
        "kinds = ('sensors', 'triggers')\n"
        "print(json.dumps({kind: [m for e in data[kind] for m in e['python-modules']] for kind in kinds}))\n"
    )
    info = subprocess.run([str(python), "-c", probe], env=env, cwd=tmp_path, check=True, capture_output=True, text=True)
    modules = json.loads(info.stdout.strip().splitlines()[-1])
    assert modules == {"sensors": ["mpc_sensors.coordination"], "triggers": ["mpc_sensors.triggers"]}, modules

    plugins = airflow(python, env, "plugins", "-o", "json", cwd=tmp_path)
    assert plugins.returncode == 0, plugins.stderr[-3000:]
    [ui] = [p for p in json.loads(plugins.stdout) if p["name"] == "mpc_runs"]
    assert "airflow-mpc-federation==0.2.0" in str(ui["source"]) and "mpc_ui.plugin:MPCRunsPlugin" in str(ui["source"])

    # A cloned project with the wheel installed too: the plugins folder's shim (plugins/mpc_ui_plugin.py)
    # leaves the plugin to the entry point, so Airflow registers it once, without a "plugin import error".
    both = airflow(
        python, {**env, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")}, "plugins", "-o", "json", cwd=tmp_path
    )
    assert both.returncode == 0, both.stderr[-3000:]
    [ui] = [p for p in json.loads(both.stdout) if p["name"] == "mpc_runs"]
    assert "airflow-mpc-federation==0.2.0" in str(ui["source"])
    assert "already registered" not in both.stdout + both.stderr


def test_a_night_with_the_installed_provider_and_builtins_by_name(installed, tmp_path, s3_server):
    python, purelib, _ = installed
    parties_yaml = small_parties(inputs=3, computes=3)
    companies = [p["id"] for p in parties_yaml if "input" in p["roles"]]
    data_dir = tmp_path / "data"
    demo.datagen().generate(data_dir, companies, 3000, 11, "2024-01", "2024-03")
    spec_path, parties = demo.setup_federation(
        tmp_path, parties_yaml, s3_server, "local[1]", data_dir, prefix=f"{tmp_path.name}-{os.getpid()}"
    )
    raw = yaml.safe_load(spec_path.read_text())
    raw["program"]["file"] = "builtin:hhi"
    raw["aggregation"]["job"] = "builtin:taxi_revenue"
    spec_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    # A user's own DAG file, the only one in the DAGs folder; the plugins folder is empty.
    dags, plugins = tmp_path / "user-dags", tmp_path / "empty-plugins"
    dags.mkdir()
    plugins.mkdir()
    # (Airflow's safe mode parses only files that mention both "airflow" and "dag".)
    (dags / "nightly_hhi.py").write_text(
        '"""Our nightly HHI: an Airflow DAG of the MPC federation."""\n\n'
        "from mpc_operators.dag import federation_dag\n\n"
        f"dag = federation_dag({str(spec_path)!r}, tags=['mine'])\n"
    )

    def env_of(party):
        env = {**party.env(), **installed_env(python, party.airflow_home, dags, plugins), "PYSPARK_PYTHON": str(python)}
        env.pop("PYTHONPATH", None)
        return env

    codes = run_dags_test(parties, "taxi_hhi", DATE, 600, airflow=[*NICE, str(python), "-m", "airflow"], env_of=env_of)
    logs = {p.id: (p.home / f"dags-test-{DATE}.log").read_text(errors="replace") for p in parties}
    assert codes == {p.id: 0 for p in parties}, {pid: logs[pid][-3000:] for pid, c in codes.items() if c}

    from mpc_federation.spec import load_spec

    spec = load_spec(spec_path)
    regulator = next(p for p in parties if p.id == "regulator")
    result = xcom(regulator, "taxi_hhi", "reveal")
    assert result["roster"] == companies
    expected = demo.plaintext_hhi(
        data_dir, companies, spec.months(datetime(2024, 4, 1, tzinfo=UTC)), spec.program_params, spec.data_policy
    )
    hhi = result["outputs"]["hhi"]
    assert hhi["labels"] == ["all", "2024-01", "2024-02", "2024-03"]
    assert [Decimal(x) for x in hhi["exact"]] == [expected[label] for label in hhi["labels"]]
    # The Spark job that ran is the wheel's package data, named in the spec as builtin:taxi_revenue.
    assert str(purelib / "mpc_federation" / "_builtins" / "jobs" / "taxi_revenue.py") in logs["company_a"]
