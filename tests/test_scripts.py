"""The derivation scripts and the command line, run as a user runs them."""

import json
import pathlib
import subprocess
import sys

import pytest

from dmftools.cli import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ["stationary", "chaotic", "rate_equivalence", "rank_two"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_derivation_script_writes_its_page(name, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "derivations" / f"{name}.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / f"{name}.md").read_text()
    assert "## " in page and "\\begin{aligned}" in page and "Steps" in page
    # the committed page is what the script writes
    assert page == (ROOT / "docs" / "derivations" / f"{name}.md").read_text()


def test_rate_script_reports_identity(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "derivations" / "rate_equivalence.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert "stationary: rate-regime equations identical to the current-regime ones: True" in proc.stdout
    assert "chaotic: rate-regime equations identical to the current-regime ones: True" in proc.stdout


def test_cli_derive_text(capsys):
    assert main(["derive", "--state", "chaotic", "--SI", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "Delta_inf = Sigma_I**2 + Sigma_m**2*kappa**2 + g**2*[[phi]]_2(mu, Delta_0, Delta_inf)" in out


def test_cli_derive_json(capsys):
    assert main(["derive", "--format", "json", "--regime", "rate"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unknowns"] == ["mu", "delta0", "kappa"]
    assert data["parameters"]["Mm"] == 1.1 and data["parameters"]["g"] is None


def test_cli_bad_input_exits_2(capsys):
    assert main(["derive", "--Sm", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Sm" in err


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "dmftools", "derive", "--phi", "erf"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "phi = erf" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "dmftools", "derive", "--phi", "relu6"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "phi" in bad.stderr


def test_cli_phase_diagram_on_worker_processes(tmp_path, capsys):
    """``--workers 2`` (a process pool; by default two bands of the overlap axis per
    state) writes the same regions as the in-process run; bad worker options exit 2 with a
    one-line message."""
    args = ["phase-diagram", "--g-num", "5", "--overlap-num", "8", "--no-boundaries"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    one = capsys.readouterr().out.splitlines()[-1]
    assert main(args + ["--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    two = capsys.readouterr().out.splitlines()[-1]
    assert one == two and one.startswith("regions (grid points): ")
    assert (tmp_path / "two.png").stat().st_size > 0
    for bad, name in ((["--workers", "0"], "--workers"), (["--bands", "2"], "--bands")):
        assert main(args + bad) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and name in err
