"""``arena dashboard``: one-line errors, and optuna-dashboard in a real browser on a duel.

The browser test drives Debian's Chromium headless through its chromedriver (Selenium, never
downloading a browser or a driver) and keeps its screenshots in ``$ARENA_TEST_ARTIFACTS``
(default: a ``dashboard`` folder under pytest's temporary directory), printing where.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from arena.cli.app import main
from studies.storage import duel_studies, open_storage

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# headless on a machine with no display, no GPU and no network beyond this one
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,1000",
)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_storage_that_does_not_exist_is_one_line_and_stays_absent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for url in (f"sqlite:///{tmp_path / 'none.db'}", f"journal://{tmp_path / 'none.log'}"):
        line = _error(capsys, ["dashboard", "--storage", url])
        assert "no Optuna storage" in line and "none." in line
    assert list(tmp_path.iterdir()) == []
    line = _error(capsys, ["dashboard", "--storage", "postgresql://arena:secret@127.0.0.1:1/x"])
    assert "cannot open Optuna storage" in line and "secret" not in line


def test_a_bad_port_or_a_busy_one_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    optuna.create_study(storage=url, study_name="d/r01/attacker")
    assert "--port" in _error(capsys, ["dashboard", "--storage", url, "--port", "70000"])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main(["dashboard", "--storage", url, "--port", port]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # it never says where it listens before it can
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if line.startswith("arena dashboard: error: ")
    ]
    assert err.strip().startswith("arena dashboard: error: cannot listen on")


def _artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("ARENA_TEST_ARTIFACTS")
    folder = Path(given) if given else tmp_path_factory.getbasetemp() / "artifacts"
    folder = folder / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _serve(storage: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arena", "dashboard", "--storage", storage, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"the dashboard did not listen in time: {log.read_text()}")


def test_chromium_finds_the_duel_studies_on_the_dashboard(
    reference_duel: Any,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"no {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium, chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    storage = open_storage(reference_duel.storage, create=False)
    names = duel_studies(storage, reference_duel.result["duel"]["name"])
    assert len(names) == 2 * len(reference_duel.result["rounds"])
    attacker_id = next(
        s._study_id for s in storage.get_all_studies() if s.study_name.endswith("/attacker")
    )
    port = _free_port()
    server = _serve(reference_duel.storage, port, tmp_path / "dashboard.txt")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look online
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    folder = _artifacts(tmp_path_factory)
    try:
        browser.get(f"http://127.0.0.1:{port}/dashboard/")

        def shows(*texts: str) -> Any:
            return lambda b: all(t in b.find_element(By.TAG_NAME, "body").text for t in texts)

        WebDriverWait(browser, 90).until(shows(*names))
        browser.save_screenshot(str(folder / "studies.png"))
        browser.get(f"http://127.0.0.1:{port}/dashboard/studies/{attacker_id}")
        WebDriverWait(browser, 90).until(shows(names[0], "History", "train.lr"))
        browser.save_screenshot(str(folder / "attacker-study.png"))
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=30)
    shutil.copy(tmp_path / "dashboard.txt", folder / "server.txt")
    with capsys.disabled():
        print(f"\n  dashboard screenshots: {folder}")
    assert (folder / "studies.png").stat().st_size > 10_000
    assert (folder / "attacker-study.png").stat().st_size > 10_000
