"""``emobox leaderboard html OUT_DIR``: the leaderboard as a static web site.

The site is plain files that open from disk (``file://``) or any static host, with nothing
loaded from elsewhere: ``index.html`` (the intra-corpus table, sortable by any column and
filtered by language and head; a bar chart per corpus; the cross-corpus heatmaps),
``entry-<id>.html`` per entry (its submission metadata and every corpus's scores),
``style.css`` and ``app.js`` (copied from the package). The data the page draws is embedded in
``index.html`` as JSON, so the page needs no request to read it.

Sources, any mix of them:

- a leaderboard file (``--file``, as ``leaderboard add``/``show``), read and checked as ``show``
  reads it: a damaged file is an error, an entry that fails the score card's schema is left
  out with a warning naming it;
- ``emobox report`` folders (``cells.csv``: one entry per upstream, head and fold scheme);
- ``emobox cross`` folders (``matrix.json``: a cross-corpus heatmap).

Every name read is untrusted: the static pages escape it as HTML, the embedded JSON escapes
``<``, ``>`` and ``&`` so no string can end its ``<script>`` element, and ``app.js`` puts
strings into the page only as text, never as markup. A content security policy lets the pages
run no script but ``app.js``.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Optional, Sequence

from pydantic import Field

from emobox._version import __version__
from emobox.errors import DataError, EmoboxUsageError
from emobox.io import atomic_write_text, read_bytes_capped
from emobox.plugin.registry import Registry, get_registry
from emobox.reporting import leaderboard
from emobox.reporting.report import MARK_CONTAMINATED, MARK_PARTIAL, MARK_TEST, corpus_language
from emobox.reporting.submission_io import Fraction, Name, StrictModel, parse_json, \
    schema_problems, shorten

GENERATOR = "emobox leaderboard html"
ASSETS = ("style.css", "app.js")
MAX_CELLS_BYTES = 16 << 20  # a report's cells.csv
MAX_MATRIX_BYTES = 4 << 20  # a cross run's matrix.json
MAX_FIELD_CHARS = 200
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENTRY_PAGE = re.compile(r"^entry-[0-9a-z]+\.html$")


@dataclass
class Result:
    """One corpus's scores of an entry (percent)."""

    corpus: str
    language: str
    head: str
    scheme: str
    ua: float
    ua_std: float
    wa: float | None = None
    wa_std: float | None = None
    f1: float | None = None
    f1_std: float | None = None
    folds: int | None = None
    n_folds: int | None = None
    select: str = "valid"  # or "test"
    contaminated: bool = False
    seed: int | None = None
    epochs: int | None = None
    gold: str = ""

    @property
    def marks(self) -> str:
        return ((MARK_TEST if self.select == "test" else "")
                + (MARK_CONTAMINATED if self.contaminated else "")
                + (MARK_PARTIAL if self.folds is not None and self.n_folds is not None
                   and self.folds < self.n_folds else ""))


@dataclass
class Entry:
    id: str
    name: str
    source: str  # the file it was read from
    checkpoint: str = ""
    parameters: int | None = None
    meta: list[tuple[str, str]] = field(default_factory=list)  # (label, value) for its page
    results: list[Result] = field(default_factory=list)

    @property
    def by_test(self) -> bool:
        return any(r.select == "test" for r in self.results)

    @property
    def contaminated(self) -> bool:
        return any(r.contaminated for r in self.results)


@dataclass
class Cross:
    """A cross-corpus matrix (``emobox cross``'s ``matrix.json``)."""

    source: str
    upstream: str
    head: str
    corpora: list[str]
    by_test: bool
    contaminated: list[list[bool]]
    metrics: dict[str, dict]  # name -> {"matrix": percent or None, "average": percent or None}


# -- reading ----------------------------------------------------------------------------------

def _pct(v: float | None) -> float | None:
    return None if v is None else 100 * v


def _r2(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def entries_from_board(cards: Sequence[dict], source: str,
                       registry: Registry | None = None) -> list[Entry]:
    """Leaderboard entries (score cards that passed the schema) as :class:`Entry`."""
    registry = registry or get_registry()
    out = []
    for card in cards:
        up = card["upstream"]
        options = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}"
                            for k, v in sorted(up.get("options", {}).items()))
        entry = Entry(id=card["sha256"][:12], name=card["name"], source=source,
                      checkpoint=up.get("checkpoint_id", ""), parameters=up.get("parameters"))
        entry.meta = [
            ("upstream", up["name"]), ("checkpoint", up.get("checkpoint_id") or "–"),
            ("parameters", _params(up.get("parameters"))),
            ("layer", "–" if up.get("layer") is None else str(up["layer"])),
            ("precision", up.get("precision") or "–"), ("upstream options", options or "–"),
            ("submission file", card["submission"]), ("sha256", card["sha256"]),
            ("emobox version (packed)", card["submission_emobox_version"]),
            ("emobox version (scored)", card["emobox_version"]), ("source", source)]
        for corpus, c in sorted(card["corpora"].items()):
            entry.results.append(Result(
                corpus=corpus, language=corpus_language(corpus, registry),
                head=c["downstream"], scheme=c["scheme"], ua=_pct(c["ua"]),
                ua_std=_pct(c["ua_std"]), wa=_pct(c["wa"]), wa_std=_pct(c["wa_std"]),
                f1=_pct(c["f1"]), f1_std=_pct(c["f1_std"]), folds=len(c["folds"]),
                n_folds=c["n_folds"], select=c["select"], contaminated=c["contaminated"],
                seed=c["seed"], epochs=c.get("epochs"), gold=c["gold"]))
        out.append(entry)
    return out


CELLS_COLUMNS = ("downstream", "scheme", "upstream", "corpus", "language", "folds", "n_folds",
                 "UA", "UA std", "selected_by_test", "contaminated")


def _text(value: str, where: str, column: str, path: Path, empty: bool = False) -> str:
    if not value and not empty:
        raise DataError(f"{path}: {where}: column '{column}' is empty", path=str(path))
    if len(value) > MAX_FIELD_CHARS or _CONTROL.search(value):
        raise DataError(f"{path}: {where}: column '{column}' is not a name (longer than "
                        f"{MAX_FIELD_CHARS} characters or holds a control character)",
                        path=str(path))
    return value


def _number(value: str, where: str, column: str, path: Path, lo: float, hi: float,
            integer: bool = False, optional: bool = False) -> Any:
    if value == "" and optional:
        return None
    try:
        x = int(value) if integer else float(value)
    except ValueError:
        x = None
    if x is None or not math.isfinite(x) or not lo <= x <= hi:
        raise DataError(f"{path}: {where}: column '{column}' is {shorten(value, 40)!r}, not "
                        f"{'an integer' if integer else 'a number'} from {lo:g} to {hi:g}",
                        path=str(path))
    return x


def _flag(value: str, where: str, column: str, path: Path) -> bool:
    if value not in ("0", "1"):
        raise DataError(f"{path}: {where}: column '{column}' is {shorten(value, 40)!r}, not 0 "
                        f"or 1", path=str(path))
    return value == "1"


def read_cells(path: Path) -> list[Entry]:
    """The entries of an ``emobox report`` folder's ``cells.csv``: one per (head, fold scheme,
    upstream row)."""
    data = read_bytes_capped(path, MAX_CELLS_BYTES, too_big="not a report emobox wrote")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})", path=str(path))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        head = next(reader, None)
        missing = [c for c in CELLS_COLUMNS if c not in (head or [])]
        if missing:
            raise DataError(f"{path}: not a report's cells.csv (no column "
                            f"{', '.join(repr(c) for c in missing)})", path=str(path))
        col = {name: i for i, name in reversed(list(enumerate(head)))}
        entries: dict[tuple[str, str, str], Entry] = {}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(head):
                raise DataError(f"{path}: line {line}: {len(row)} columns, the header has "
                                f"{len(head)}", path=str(path))
            where = f"line {line}"

            def get(name: str, default: str = "") -> str:
                return row[col[name]] if name in col else default

            def num(name: str, optional: bool = True) -> float | None:
                return _number(get(name), where, name, path, 0.0, 100.0, optional=optional)

            head_name = _text(get("downstream"), where, "downstream", path)
            scheme = _text(get("scheme"), where, "scheme", path)
            upstream = _text(get("upstream"), where, "upstream", path)
            corpus = _text(get("corpus"), where, "corpus", path)
            result = Result(
                corpus=corpus, language=_text(get("language"), where, "language", path),
                head=head_name, scheme=scheme, ua=num("UA", False), ua_std=num("UA std", False),
                wa=num("WA"), wa_std=num("WA std"), f1=num("F1"), f1_std=num("F1 std"),
                folds=_number(get("folds"), where, "folds", path, 0, 1000, integer=True),
                n_folds=_number(get("n_folds"), where, "n_folds", path, 0, 1000, integer=True),
                select="test" if _flag(get("selected_by_test"), where, "selected_by_test",
                                       path) else "valid",
                contaminated=_flag(get("contaminated"), where, "contaminated", path))
            key = (head_name, scheme, upstream)
            entry = entries.get(key)
            if entry is None:
                digest = hashlib.sha256("\0".join((str(path.resolve()),) + key).encode())
                checkpoint = _text(get("checkpoint_id"), where, "checkpoint_id", path, True)
                source = f"{path.parent.name}/{path.name}"  # no local path on a public page
                entry = entries[key] = Entry(
                    id="r" + digest.hexdigest()[:11], name=upstream, source=source,
                    checkpoint=checkpoint,
                    meta=[("upstream", upstream), ("checkpoint", checkpoint or "–"),
                          ("head", head_name), ("fold scheme", scheme),
                          ("source", source)])
            if any(r.corpus == corpus for r in entry.results):
                raise DataError(f"{path}: {where}: {upstream} x {corpus} ({head_name}, "
                                f"{scheme} folds) is listed twice", path=str(path))
            entry.results.append(result)
    except csv.Error as exc:
        raise DataError(f"{path}: not a valid CSV file ({exc})", path=str(path))
    return list(entries.values())


Matrix = Annotated[list[Annotated[list[Optional[Fraction]], Field(max_length=200)]],
                   Field(max_length=200)]


class _CrossMetric(StrictModel):
    matrix: Matrix
    average: Optional[Fraction] = None


class _CrossMatrix(StrictModel):
    kind: Literal["emobox.cross_matrix"]
    schema_version: Literal[1]
    upstream: Name
    downstream: Name
    corpora: Annotated[list[Name], Field(min_length=2, max_length=200)]
    selected_by_test: bool = False
    contaminated: Annotated[list[Annotated[list[bool], Field(max_length=200)]],
                            Field(max_length=200)] = []
    metrics: dict[Literal["accuracy", "ua", "f1"], _CrossMetric]


def read_cross(path: Path) -> Cross:
    """An ``emobox cross`` folder's ``matrix.json``."""
    data = parse_json(read_bytes_capped(path, MAX_MATRIX_BYTES,
                                        too_big="not a matrix emobox wrote"), str(path))
    known, problems = schema_problems(_CrossMatrix, data, str(path), limit=1)
    if problems:
        raise DataError(problems[0], path=str(path))
    n = len(known["corpora"])
    square = [known["contaminated"]] if known["contaminated"] else []
    square += [m["matrix"] for m in known["metrics"].values()]
    if any(len(m) != n or any(len(row) != n for row in m) for m in square):
        raise DataError(f"{path}: the matrices are not {n} x {n} (one row and column per "
                        f"corpus)", path=str(path))
    if not known["metrics"]:
        raise DataError(f"{path}: field 'metrics' holds no matrix", path=str(path))
    return Cross(
        source=f"{path.parent.name}/{path.name}", upstream=known["upstream"],
        head=known["downstream"],
        corpora=known["corpora"], by_test=known["selected_by_test"],
        contaminated=known["contaminated"] or [[False] * n for _ in range(n)],
        metrics={name: {"matrix": [[_r2(_pct(v)) for v in row] for row in m["matrix"]],
                        "average": _r2(_pct(m["average"]))}
                 for name, m in known["metrics"].items()})


def read_report(folder: str | Path) -> tuple[list[Entry], list[Cross]]:
    """An ``emobox report`` folder (``cells.csv``) or an ``emobox cross`` folder
    (``matrix.json``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EmoboxUsageError(f"{folder}: --report takes a folder written by `emobox report` "
                               f"or `emobox cross`, and this is not a folder")
    cells, matrix = folder / "cells.csv", folder / "matrix.json"
    if not (os.path.lexists(cells) or os.path.lexists(matrix)):
        raise EmoboxUsageError(f"{folder}: holds neither cells.csv (written by `emobox "
                               f"report`) nor matrix.json (written by `emobox cross`)")
    entries = read_cells(cells) if os.path.lexists(cells) else []
    crosses = [read_cross(matrix)] if os.path.lexists(matrix) else []
    return entries, crosses


# -- the page's data --------------------------------------------------------------------------

def _params(n: int | None) -> str:
    return leaderboard._params(n)


def site_data(entries: Sequence[Entry], crosses: Sequence[Cross]) -> dict:
    """What ``app.js`` draws: one row per (entry, head, fold scheme), ranked by the mean UA
    over the corpora every row has (as ``leaderboard show``), and per language the mean over
    that language's corpora every row has."""
    rows = []
    for e in entries:
        groups: dict[tuple[str, str], list[Result]] = {}
        for r in e.results:
            groups.setdefault((r.head, r.scheme), []).append(r)
        for (head, scheme), results in groups.items():
            rows.append({
                "id": e.id, "name": e.name, "head": head, "scheme": scheme,
                "checkpoint": e.checkpoint, "params": e.parameters,
                "by_test": any(r.select == "test" for r in results),
                "contaminated": any(r.contaminated for r in results),
                "cells": {r.corpus: {"ua": _r2(r.ua), "std": _r2(r.ua_std), "marks": r.marks}
                          for r in results},
                "ua": {r.corpus: r.ua for r in results}})
    languages = {r.corpus: r.language for e in entries for r in e.results}
    corpora = sorted(languages, key=lambda c: (languages[c] in ("Mix", "Other"),
                                               languages[c], c))
    language_list = list(dict.fromkeys(languages[c] for c in corpora))
    common = {"": [c for c in corpora if all(c in row["cells"] for row in rows)]}
    for lang in language_list:
        common[lang] = [c for c in common[""] if languages[c] == lang]
    for row in rows:  # from the unrounded scores, as `leaderboard show` computes it
        ua = row.pop("ua")
        row["mean"] = {k: (round(sum(ua[c] for c in cs) / len(cs), 2) if cs else None)
                       for k, cs in common.items()}
    rows.sort(key=lambda r: (r["mean"][""] is None, -(r["mean"][""] or 0.0), r["name"],
                             r["head"], r["scheme"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return {
        "generator": f"{GENERATOR} (emobox {__version__})",
        "corpora": corpora, "languages": languages, "language_list": language_list,
        "heads": sorted({row["head"] for row in rows} | {c.head for c in crosses}),
        "common": common, "rows": rows,
        "cross": [{"upstream": c.upstream, "head": c.head, "corpora": c.corpora,
                   "by_test": c.by_test, "contaminated": c.contaminated,
                   "metrics": c.metrics, "source": c.source} for c in crosses],
        "marks": {"test": MARK_TEST, "contaminated": MARK_CONTAMINATED,
                  "partial": MARK_PARTIAL}}


def embed_json(data: Any) -> str:
    """JSON for a ``<script type="application/json">`` element: no ``<``, ``>`` or ``&``, so
    no string in it can close the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


# -- pages ------------------------------------------------------------------------------------

def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _head(title: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="{GENERATOR}">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<meta name="referrer" content="no-referrer">\n'
            f'<title>{_e(title)}</title>\n<link rel="icon" href="data:,">\n'
            f'<link rel="stylesheet" href="style.css">\n</head>\n')


LEGEND = (f"{MARK_TEST} models selected by TEST (optimistic); {MARK_CONTAMINATED} contaminated "
          f"(the upstream was trained on this corpus); {MARK_PARTIAL} partial (fewer folds than "
          f"the corpus has).")


def render_index(data: dict, sources: Sequence[str]) -> str:
    source_list = "".join(f"<li><code>{_e(s)}</code></li>" for s in sources)
    return (_head("emobox leaderboard") + '<body>\n<header>\n<h1>emobox leaderboard</h1>\n'
            f'<details class="sources"><summary>{len(sources)} source'
            f'{"s" if len(sources) != 1 else ""}</summary><ul>{source_list}</ul></details>\n'
            '</header>\n<main>\n'
            '<section id="intra">\n<h2>Intra-corpus results (UA %, mean ± std over folds)</h2>\n'
            '<div class="filters">\n'
            '<label>Language <select id="filter-language"><option value="">all</option>'
            '</select></label>\n'
            '<label>Head <select id="filter-head"><option value="">all</option></select>'
            '</label>\n<span id="shown" class="shown"></span>\n</div>\n'
            '<div class="scroll"><table id="board" class="board"><thead></thead><tbody>'
            '</tbody></table></div>\n'
            f'<p class="legend">{_e(LEGEND)} Click a column header to sort by it; click again '
            'to reverse.</p>\n</section>\n'
            '<section id="charts">\n<h2>UA per corpus</h2>\n<div id="chart-list" '
            'class="chart-list"></div>\n</section>\n'
            '<section id="cross" hidden>\n<h2>Cross-corpus results</h2>\n<div class="filters">'
            '<label>Metric <select id="cross-metric"><option value="accuracy">accuracy'
            '</option><option value="ua">UA</option><option value="f1">macro-F1</option>'
            '</select></label></div>\n<p class="legend">Rows: the corpus trained on; columns: '
            f'the corpus tested on (percent). {_e(MARK_CONTAMINATED)} contaminated. The average '
            'is over the off-diagonal cells.</p>\n<div id="cross-list" class="cross-list">'
            '</div>\n</section>\n</main>\n'
            '<noscript><p>The table and charts need JavaScript; each entry\'s page does not.'
            '</p></noscript>\n'
            f'<footer>{_e(data["generator"])}</footer>\n'
            f'<script type="application/json" id="board-data">{embed_json(data)}</script>\n'
            '<script src="app.js"></script>\n</body>\n</html>\n')


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def render_entry(entry: Entry) -> str:
    marks = (f' <span class="mark by-test" title="selected by test">{MARK_TEST} selected by '
             f'test</span>' if entry.by_test else "") + (
        f' <span class="mark contaminated" title="contaminated">{MARK_CONTAMINATED} '
        f'contaminated</span>' if entry.contaminated else "")
    meta = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>\n" for k, v in entry.meta)
    rows = []
    for r in sorted(entry.results, key=lambda r: (r.head, r.scheme, r.corpus)):
        selection = "test " + MARK_TEST if r.select == "test" else "validation"
        folds = "–" if r.folds is None else (f"{r.folds}/{r.n_folds}" + (
            f" {MARK_PARTIAL}" if r.n_folds is not None and r.folds < r.n_folds else ""))
        cls = " ".join(c for c, on in (("by-test", r.select == "test"),
                                       ("contaminated", r.contaminated)) if on)
        cells = [r.corpus, r.language, r.head, r.scheme,
                 "–" if r.seed is None else r.seed, selection,
                 f"yes {MARK_CONTAMINATED}" if r.contaminated else "no", folds,
                 "–" if r.epochs is None else r.epochs, _fmt(r.ua, r.ua_std),
                 _fmt(r.wa, r.wa_std), _fmt(r.f1, r.f1_std), r.gold or "–"]
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{_e(c)}</td>" for c in cells)
                    + "</tr>\n")
    heads = ["corpus", "language", "head", "fold scheme", "seed", "selection", "contaminated",
             "folds", "epochs", "UA %", "WA %", "macro-F1 %", "gold labels"]
    return (_head(f"{entry.name} — emobox leaderboard") + "<body>\n<header>\n"
            '<p><a href="index.html">← leaderboard</a></p>\n'
            f'<h1 class="entry-name">{_e(entry.name)}{marks}</h1>\n</header>\n<main>\n'
            f'<section>\n<h2>Submission</h2>\n<table class="meta">\n{meta}</table>\n'
            '</section>\n<section>\n<h2>Results per corpus</h2>\n<div class="scroll">'
            '<table class="results">\n<thead><tr>'
            + "".join(f"<th>{_e(h)}</th>" for h in heads) + "</tr></thead>\n<tbody>\n"
            + "".join(rows) + f'</tbody></table></div>\n<p class="legend">{_e(LEGEND)}</p>\n'
            f'</section>\n</main>\n<footer>{_e(GENERATOR)} (emobox {_e(__version__)})'
            '</footer>\n</body>\n</html>\n')


# -- writing ----------------------------------------------------------------------------------

@dataclass
class Site:
    out: Path
    entries: list[Entry]
    crosses: list[Cross]
    files: list[Path]


def _check_out(out: Path) -> None:
    """``out`` is new, empty, or a site this command wrote (its pages are replaced)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise EmoboxUsageError(f"{out}: not a folder; give OUT_DIR a new or empty folder, or "
                               f"one `emobox leaderboard html` wrote")
    if not out.exists() or not any(out.iterdir()):
        return
    index = out / "index.html"
    try:
        ours = f'content="{GENERATOR}"' in read_bytes_capped(
            index, 64 << 20, too_big="not a page emobox wrote").decode("utf-8", "replace")
    except (FileNotFoundError, DataError):
        ours = False
    if not ours:
        raise EmoboxUsageError(f"{out}: the folder holds files that `emobox leaderboard html` "
                               f"did not write; give OUT_DIR a new or empty folder")


def write_site(out: str | Path, board_file: str | Path | None = None,
               reports: Iterable[str | Path] = (), registry: Registry | None = None,
               use_board: bool = True) -> Site:
    """Write the site to ``out`` from the leaderboard (when ``use_board``: ``board_file`` or
    the default file) and the report or cross folders ``reports``."""
    out = Path(out)
    entries: list[Entry] = []
    crosses: list[Cross] = []
    sources: list[str] = []  # as the page names them: no local paths
    given: list[str] = []
    if use_board:
        path = leaderboard.board_path(board_file)
        cards = leaderboard.load(path)
        entries += entries_from_board(cards, path.name, registry)
        sources.append(path.name)
        given.append(str(path) if path.exists() else f"{path} (no such file)")
    for folder in reports:
        got, cross = read_report(folder)
        entries += got
        crosses += cross
        sources += [e.source for e in got[:1]] + [c.source for c in cross]
        given.append(str(folder))
    if not entries and not crosses:
        raise EmoboxUsageError(f"nothing to show: no results in {' or '.join(given)} (add "
                               f"submissions with `emobox leaderboard add`, or give --report "
                               f"folders)")
    seen: dict[str, int] = {}
    for e in entries:  # the same entry from two sources gets its own page
        n = seen.get(e.id, 0)
        seen[e.id] = n + 1
        if n:
            e.id = f"{e.id}x{n}"
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    web = resources.files("emobox.reporting") / "web"
    for name in ASSETS:
        atomic_write_text(out / name, (web / name).read_text(encoding="utf-8"))
        files.append(out / name)
    pages = {f"entry-{e.id}.html": render_entry(e) for e in entries}
    for stale in out.iterdir():  # pages of entries no longer on the board
        if _ENTRY_PAGE.match(stale.name) and stale.name not in pages and stale.is_file() \
                and not stale.is_symlink():
            stale.unlink()
    for name, text in pages.items():
        atomic_write_text(out / name, text)
        files.append(out / name)
    atomic_write_text(out / "index.html", render_index(site_data(entries, crosses), sources))
    files.append(out / "index.html")
    return Site(out, entries, crosses, files)
