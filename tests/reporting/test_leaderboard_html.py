"""`emobox leaderboard html`: the static site from a leaderboard file and report folders, checked
as HTML and in a real headless browser (Debian's chromium with chromium-driver, via selenium)."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest

from emobox.reporting import report as report_mod
from emobox.reporting.cross_report import CrossResult, matrix_json
from emobox.reporting.leaderboard_html import write_site

EVIL = '<script>alert("x")</script></script><!--&amp;'


def _fold(fold, ua, per_class=50_000):
    """A fold whose confusion matrix gives ``ua`` (to 1/per_class) as its UA, WA and F1."""
    hits = round(ua * per_class)
    score = hits / per_class
    return {"fold": fold, "ua": score, "wa": score, "f1": score, "n_test": 2 * per_class,
            "confusion": [[hits, per_class - hits], [per_class - hits, hits]]}


def _corpus(ua, std, downstream="linear_probe", select="valid", contaminated=False, seed=7):
    folds = [_fold(1, ua - std), _fold(2, ua + std)]
    entry = {"downstream": downstream, "grid": {"lr": [0.001]}, "scheme": "emobox",
             "seed": seed, "folds": folds, "n_folds": 2, "select": select,
             "labels": ["angry", "happy"], "epochs": 10, "contaminated": contaminated,
             "run_fingerprint": "", "gold": "published fold table"}
    for m in ("ua", "wa", "f1"):
        values = [f[m] for f in folds]
        entry[m], entry[f"{m}_std"] = statistics.fmean(values), statistics.pstdev(values)
    return entry


def _card(name, corpora, layer=None, precision=None, checkpoint="org/model"):
    sha = hashlib.sha256(name.encode()).hexdigest()
    return {"kind": "emobox.score", "schema_version": 1, "submission": f"{name[:20]}.zip",
            "sha256": sha, "content_sha256": sha,
            "upstream": {"name": "up", "checkpoint_id": checkpoint, "parameters": 94_400_000,
                         "options": {}, "layer": layer, "precision": precision},
            "emobox_version": "9.9.1", "submission_emobox_version": "9.9.0", "name": name,
            "corpora": corpora}


# emodb (German), ravdess and savee (English): the mean over all three ranks the entries
CARDS = [
    # alpha's mean is 63.3373: averaged from the scores rounded to 2 decimals it would be 63.33
    _card("alpha", {"emodb": _corpus(0.80004, 0.02), "ravdess": _corpus(0.60004, 0.01),
                    "savee": _corpus(0.50004, 0.03)}, layer=6, precision="fp16"),
    _card("bravo", {"emodb": _corpus(0.70, 0.02), "ravdess": _corpus(0.75, 0.02),
                    "savee": _corpus(0.65, 0.02, select="test")}),
    _card(EVIL, {"emodb": _corpus(0.50, 0.01, downstream="mlp", contaminated=True),
                 "ravdess": _corpus(0.40, 0.01, downstream="mlp"),
                 "savee": _corpus(0.45, 0.01, downstream="mlp")}, checkpoint=EVIL),
]
# means: alpha 63.34, bravo 70.00, EVIL 45.00


def _board(path, cards=CARDS, extra=()):
    path.write_text(json.dumps({"kind": "emobox.leaderboard", "schema_version": 1,
                                "entries": list(cards) + list(extra)}))
    return path


def _report_folder(folder):
    """A report's cells.csv as `emobox report` writes it: whisper x emodb by the mlp head."""
    run = SimpleNamespace(select_test=False, contaminated=False, path=Path("/runs/x"),
                          config={"checkpoint_id": "openai/whisper-tiny"})
    scores = {"ua": (0.9, 0.01), "wa": (0.91, 0.01), "f1": (0.89, 0.02)}
    cell = report_mod.Cell("whisper_tiny", "emodb", run, scores, 5, 5)
    groups = [("German", ["emodb"])]
    table = report_mod.Table([report_mod.Row("mlp", "emobox", "whisper_tiny", "whisper_tiny",
                                             {"emodb": cell})],
                             groups, report_mod.columns_for(groups))
    folder.mkdir(parents=True)
    (folder / "cells.csv").write_text(report_mod.cells_csv(table))
    return folder


def _cross_folder(folder):
    """A cross run's matrix.json as `emobox cross` writes it (emodb <-> ravdess, mlp head)."""
    cells = {("emodb", "emodb"): {"wa": 0.9, "ua": 0.88, "f1": 0.87, "contaminated": False},
             ("emodb", "ravdess"): {"wa": 0.3, "ua": 0.31, "f1": 0.29, "contaminated": True},
             ("ravdess", "emodb"): {"wa": 0.4, "ua": 0.41, "f1": 0.39, "contaminated": False},
             ("ravdess", "ravdess"): {"wa": 0.7, "ua": 0.7, "f1": 0.69, "contaminated": False}}
    result = CrossResult(folder, ["emodb", "ravdess"], ("angry", "happy"), cells,
                         {"upstream": "whisper_tiny", "downstream": "mlp",
                          "selected_by_test": False}, [])
    folder.mkdir(parents=True)
    (folder / "matrix.json").write_text(json.dumps(matrix_json(result, None)))
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("site")
    board = _board(base / "board.json")
    out = base / "web"
    write_site(out, board, [_report_folder(base / "report"), _cross_folder(base / "cross")])
    return out


def _data(index_text):
    m = re.search(r'<script type="application/json" id="board-data">(.*?)</script>',
                  index_text, re.S)
    return json.loads(m.group(1))


# -- the generated files ----------------------------------------------------------------------

def test_site_files_and_ranking(site):
    names = sorted(p.name for p in site.iterdir())
    assert {"index.html", "app.js", "style.css"} <= set(names)
    data = _data((site / "index.html").read_text())
    # the report's whisper row has emodb only: as in `leaderboard show`, the mean is over the
    # corpora every row has, here emodb alone (the board-only test checks a 3-corpus mean)
    ranked = [(r["name"], r["head"], r["mean"][""]) for r in data["rows"]]
    assert ranked == [("whisper_tiny", "mlp", 90.0), ("alpha", "linear_probe", 80.0),
                      ("bravo", "linear_probe", 70.0), (EVIL, "mlp", 50.0)]
    assert data["common"] == {"": ["emodb"], "English": [], "German": ["emodb"]}
    assert data["languages"] == {"emodb": "German", "ravdess": "English", "savee": "English"}
    assert [r["mean"]["English"] for r in data["rows"]] == [None] * 4
    assert data["cross"][0]["metrics"]["accuracy"]["matrix"] == [[90.0, 30.0], [40.0, 70.0]]
    assert data["cross"][0]["metrics"]["accuracy"]["average"] == 35.0
    entries = sorted(p.name for p in site.glob("entry-*.html"))
    assert len(entries) == 4
    for card in CARDS:
        assert f"entry-{card['sha256'][:12]}.html" in entries


def test_board_only_ranking_matches_leaderboard_show(tmp_path, cli):
    board = _board(tmp_path / "board.json", CARDS[:2])
    res = cli("leaderboard", "html", tmp_path / "web", "--file", board)
    assert res.code == 0, res.err
    assert "2 entries, 0 cross-corpus matrices" in res.out
    data = _data((tmp_path / "web" / "index.html").read_text())
    res = cli("leaderboard", "show", "--file", board, "--format", "csv")
    shown = [line.split(",")[1:6:4] for line in res.out.strip().splitlines()[1:]]
    assert [[r["name"], f"{r['mean']['']:.2f}"] for r in data["rows"]] == shown
    # bravo: (70 + 75 + 65) / 3; alpha: (80.004 + 60.004 + 50.004) / 3
    assert shown == [["bravo", "70.00"], ["alpha", "63.34"]]
    assert [r["mean"]["English"] for r in data["rows"]] == [70.0, 55.0]
    assert [r["mean"]["German"] for r in data["rows"]] == [70.0, 80.0]


def test_names_are_escaped(site):
    index = (site / "index.html").read_text()
    # the JSON in the page holds no '<', so the name cannot close the script element
    block = re.search(r'id="board-data">(.*?)</script>', index, re.S).group(1)
    assert "<" not in block and ">" not in block and "&" not in block
    assert index.count("<script") == 2  # the data block and app.js, nothing from the board
    assert any(r["name"] == EVIL for r in _data(index)["rows"])
    page = (site / f"entry-{CARDS[2]['sha256'][:12]}.html").read_text()
    assert EVIL not in page and "<script" not in page
    assert html.escape(EVIL) in page  # shown as text, both as its name and its checkpoint
    assert page.count(html.escape(EVIL)) >= 3  # title, heading, checkpoint


def test_entry_pages_show_submission_metadata_and_marks(site):
    alpha = (site / f"entry-{CARDS[0]['sha256'][:12]}.html").read_text()
    for label, value in (("checkpoint", "org/model"), ("layer", "6"), ("precision", "fp16"),
                         ("emobox version (packed)", "9.9.0"),
                         ("emobox version (scored)", "9.9.1")):
        assert f"<tr><th>{label}</th><td>{value}</td></tr>" in alpha
    # emodb: German, linear_probe, emobox folds, seed 7, selected on validation, 80.00 ± 2.00
    assert ("<td>emodb</td><td>German</td><td>linear_probe</td><td>emobox</td><td>7</td>"
            "<td>validation</td><td>no</td><td>2/2</td><td>10</td><td>80.00 ± 2.00</td>") in alpha
    assert "selected by test</span>" not in alpha and "contaminated</span>" not in alpha
    bravo = (site / f"entry-{CARDS[1]['sha256'][:12]}.html").read_text()
    assert '<span class="mark by-test" title="selected by test">† selected by test' in bravo
    assert '<tr class="by-test"><td>savee</td>' in bravo and "<td>test †</td>" in bravo
    evil = (site / f"entry-{CARDS[2]['sha256'][:12]}.html").read_text()
    assert '<span class="mark contaminated" title="contaminated">§ contaminated' in evil
    assert '<tr class="contaminated"><td>emodb</td>' in evil and "<td>yes §</td>" in evil
    data = _data((site / "index.html").read_text())
    marks = {r["name"]: {c: v["marks"] for c, v in r["cells"].items()} for r in data["rows"]}
    assert marks["bravo"] == {"emodb": "", "ravdess": "", "savee": "†"}
    assert marks[EVIL] == {"emodb": "§", "ravdess": "", "savee": ""}


def test_errors(tmp_path, cli):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = cli("leaderboard", "html", tmp_path / "web", "--file", bad)
    assert res.code == 3 and res.err.startswith(f"error: {bad}: not valid JSON")
    assert len(res.err.strip().splitlines()) == 1 and not (tmp_path / "web").exists()
    # an entry that fails the schema is left out with a warning, as `leaderboard show` does
    broken = dict(CARDS[0], corpora={"emodb": dict(_corpus(0.8, 0.02), ua=1.5)})
    board = _board(tmp_path / "board.json", CARDS[1:2], extra=[broken])
    res = cli("leaderboard", "html", tmp_path / "web", "--file", board)
    assert res.code == 0 and "1 entry, 0 cross-corpus matrices" in res.out
    assert "entry 2 ('alpha'): field 'corpora.emodb.ua'" in res.err and "left out" in res.err
    # a folder of other files is not overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.html").write_text("<p>mine</p>")
    res = cli("leaderboard", "html", other, "--file", board)
    assert res.code == 2 and "did not write" in res.err
    assert (other / "index.html").read_text() == "<p>mine</p>"
    # a report folder that is neither a report nor a cross run; a damaged cells.csv
    res = cli("leaderboard", "html", tmp_path / "w2", "--report", tmp_path)
    assert res.code == 2 and "holds neither cells.csv" in res.err
    rep = _report_folder(tmp_path / "rep")
    text = (rep / "cells.csv").read_text().replace("90.00", "9e999", 1)
    (rep / "cells.csv").write_text(text)
    res = cli("leaderboard", "html", tmp_path / "w2", "--report", rep)
    assert res.code == 3 and res.err.startswith(f"error: {rep / 'cells.csv'}: line 2: column 'UA'")
    cross = _cross_folder(tmp_path / "cross")
    doc = json.loads((cross / "matrix.json").read_text())
    doc["metrics"]["ua"]["matrix"] = [[0.5]]
    (cross / "matrix.json").write_text(json.dumps(doc))
    res = cli("leaderboard", "html", tmp_path / "w2", "--report", cross)
    assert res.code == 3 and "the matrices are not 2 x 2" in res.err
    empty = _board(tmp_path / "empty.json", [])
    res = cli("leaderboard", "html", tmp_path / "w3", "--file", empty)
    assert res.code == 2 and "nothing to show" in res.err


def test_rewriting_removes_pages_of_entries_gone(tmp_path, cli):
    board = _board(tmp_path / "board.json")
    assert cli("leaderboard", "html", tmp_path / "web", "--file", board).code == 0
    assert len(list((tmp_path / "web").glob("entry-*.html"))) == 3
    _board(board, CARDS[:1])
    assert cli("leaderboard", "html", tmp_path / "web", "--file", board).code == 0
    assert [p.name for p in (tmp_path / "web").glob("entry-*.html")] == [
        f"entry-{CARDS[0]['sha256'][:12]}.html"]


# -- in a headless browser --------------------------------------------------------------------

def _chromium():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver); .ci/run installs them")
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("needs selenium (pip install -e '.[test]')")
    return webdriver, chrome, driver


@pytest.fixture(scope="module")
def browser():
    webdriver, chrome, driver_path = _chromium()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _names(browser):
    from selenium.webdriver.common.by import By

    return [tr.find_element(By.CSS_SELECTOR, "td.name a").text
            for tr in browser.find_elements(By.CSS_SELECTOR, "#board tbody tr")
            if tr.is_displayed()]


def test_page_in_browser_sorts_filters_and_renders(site, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get((site / "index.html").as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == "emobox leaderboard"
    # drawn by app.js, best mean UA first; the board's <script> name is shown as text
    assert _names(browser) == ["whisper_tiny", "alpha", "bravo", EVIL]
    assert browser.execute_script("return document.scripts.length") == 2
    # sort by a corpus column: best first, then reversed on a second click
    # (whisper has no ravdess result: last either way)
    header = browser.find_element(By.CSS_SELECTOR, '#board th[data-key="corpus:ravdess"]')
    header.click()
    assert _names(browser) == ["bravo", "alpha", EVIL, "whisper_tiny"]
    browser.find_element(By.CSS_SELECTOR, '#board th[data-key="corpus:ravdess"]').click()
    assert _names(browser) == [EVIL, "alpha", "bravo", "whisper_tiny"]
    browser.find_element(By.CSS_SELECTOR, '#board th[data-key="name"]').click()
    assert _names(browser) == [EVIL, "alpha", "bravo", "whisper_tiny"]  # '<' before letters
    # the head filter hides the other heads' rows and cross matrices
    Select(browser.find_element(By.ID, "filter-head")).select_by_value("linear_probe")
    assert sorted(_names(browser)) == ["alpha", "bravo"]
    assert browser.find_element(By.ID, "shown").text == "2 of 4 rows shown"
    assert browser.find_elements(By.CSS_SELECTOR, "#cross-list figure") == []
    Select(browser.find_element(By.ID, "filter-head")).select_by_value("mlp")
    assert sorted(_names(browser)) == [EVIL, "whisper_tiny"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cross-list figure svg")) == 1
    cells = browser.find_elements(By.CSS_SELECTOR, "#cross-list text.value")
    assert [t.text for t in cells] == ["90.0", "30.0§", "40.0", "70.0"]  # accuracy
    assert "average 35.00 %" in browser.find_element(By.CSS_SELECTOR, "#cross-list figcaption").text
    Select(browser.find_element(By.ID, "cross-metric")).select_by_value("ua")
    cells = browser.find_elements(By.CSS_SELECTOR, "#cross-list text.value")
    assert [t.text for t in cells] == ["88.0", "31.0§", "41.0", "70.0"]
    # the language filter: English corpora only; whisper (emodb only) is hidden
    Select(browser.find_element(By.ID, "filter-head")).select_by_value("")
    Select(browser.find_element(By.ID, "filter-language")).select_by_value("English")
    assert "whisper_tiny" not in _names(browser) and len(_names(browser)) == 3
    heads = [th.get_attribute("data-key")
             for th in browser.find_elements(By.CSS_SELECTOR, "#board thead th")]
    assert "corpus:emodb" not in heads and "corpus:savee" in heads
    charts = [f.get_attribute("data-corpus")
              for f in browser.find_elements(By.CSS_SELECTOR, "#chart-list figure")]
    assert charts == ["ravdess", "savee"]
    Select(browser.find_element(By.ID, "filter-language")).select_by_value("")
    # one bar per entry on each corpus chart; marks beside the values
    bars = browser.find_elements(By.CSS_SELECTOR, '#chart-list figure[data-corpus="emodb"] rect')
    assert len(bars) == 4
    values = [t.text for t in browser.find_elements(
        By.CSS_SELECTOR, '#chart-list figure[data-corpus="emodb"] text.value')]
    assert values == ["90.00", "80.00", "70.00", "50.00§"]
    shot = tmp_path / "leaderboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an entry page: the name as text, its metadata table
    browser.find_element(By.LINK_TEXT, "bravo").click()
    assert browser.find_element(By.CSS_SELECTOR, "h1.entry-name").text.startswith("bravo")
    assert "† selected by test" in browser.find_element(By.CSS_SELECTOR, "h1").text
    browser.get((site / f"entry-{CARDS[2]['sha256'][:12]}.html").as_uri())
    assert browser.find_element(By.CSS_SELECTOR, "h1.entry-name").text.startswith(EVIL)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    # were a name ever to reach the markup as a script, the pages' security policy blocks it
    tampered = site / "tampered.html"
    tampered.write_text((site / "index.html").read_text().replace(
        "<footer>", "<script>document.title = 'ran'</script><footer>"))
    try:
        browser.get(tampered.as_uri())
        assert browser.title == "emobox leaderboard" and len(_names(browser)) == 4
        assert any("Content Security Policy" in e["message"] for e in browser.get_log("browser"))
    finally:
        tampered.unlink()
