"""python-escpos's capability cache: built once, shared safely by processes starting together."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = (
    "from devices.printers.render import Capabilities, render\n"
    "print(Capabilities.for_printer().columns)\n"
)


PROBE = (
    "import os, devices.printers.render, escpos.capabilities as c\n"
    "print(c.pickle_dir, os.environ.get('ESCPOS_CAPABILITIES_PICKLE_DIR'))\n"
)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ESCPOS_CAPABILITIES_PICKLE_DIR", "CACHE_DIRECTORY")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env | {"XDG_CACHE_HOME": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp")}


def test_processes_starting_together_share_one_whole_pickle(tmp_path: Path) -> None:
    env = _env(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err.decode()[-500:] for _out, err in results]
    cache = tmp_path / "cache" / "storehub" / "escpos"
    assert sorted(p.name for p in cache.iterdir()) == [f"{sys.version.split()[0]}.capabilities.pickle"]
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left behind in the temporary directory


def test_a_later_process_reads_the_cache_instead_of_rebuilding_it(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, check=True, capture_output=True)
    pickle = next((tmp_path / "cache" / "storehub" / "escpos").iterdir())
    before = pickle.stat().st_mtime_ns
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    assert out.stdout.split() == [str(pickle.parent), "None"]  # read from the cache; children do not inherit it
    assert pickle.stat().st_mtime_ns == before


def test_systemd_cache_directory_wins(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"CACHE_DIRECTORY": str(tmp_path / "var-cache")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    assert out.stdout.split()[0].startswith(str(tmp_path / "var-cache" / "escpos"))  # built there, then moved
    assert (tmp_path / "var-cache" / "escpos" / f"{sys.version.split()[0]}.capabilities.pickle").exists()


def test_a_damaged_pickle_is_rebuilt(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, check=True, capture_output=True)
    pickle = next((tmp_path / "cache" / "storehub" / "escpos").iterdir())
    whole = pickle.read_bytes()
    pickle.write_bytes(whole[: len(whole) // 2])  # a power cut before the file reached the disk
    out = subprocess.run([sys.executable, "-c", SCRIPT], check=False, cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "48"
    assert pickle.read_bytes() == whole


def test_a_cache_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    env = _env(tmp_path)
    shared = tmp_path / "cache" / "storehub" / "escpos"
    shared.mkdir(parents=True)
    shared.chmod(0o777)  # anyone could plant a pickle here, and pickle.load runs code
    planted = shared / f"{sys.version.split()[0]}.capabilities.pickle"
    planted.write_bytes(b"not a pickle")
    out = subprocess.run([sys.executable, "-c", PROBE], check=False, cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-500:]
    assert not out.stdout.startswith(str(shared))
    assert planted.read_bytes() == b"not a pickle"
    assert list((tmp_path / "tmp").iterdir()) == []
