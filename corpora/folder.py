"""folder: your own corpus, one folder per emotion, without writing a plugin.

Layout::

    ROOT/<label>/<speaker>_<anything>.wav        e.g. ROOT/angry/spk03_take2.wav
    ROOT/<label>/<sub>/<folders>/<file>.flac     any depth below the label folder

Any audio format emobox reads (.wav, .flac, .mp3, .ogg, .m4a, ...; upper-case suffixes too).
An extra top folder (``ROOT/MyCorpus/<label>/...``, as unpacked archives look) is found by itself;
``__MACOSX``, dot files and links leaving the root are skipped.

Labels: the name of the label folder, spelt as emobox's canonical classes when it is a word for
one (``angry/``, ``anger/`` -> ``Angry``; ``joy/`` -> ``Happy``; other names are kept as written,
so that two corpora's classes meet in cross-corpus work). A label map is optional:
``--corpus-option label_map=ang:angry,hap:happy,xxx:-`` (``-`` drops a folder), a JSON or TSV file
given as
``label_map=PATH``, or a ``labels.json`` / ``labels.tsv`` file in the root (TSV: ``folder<TAB>class``
per line). With a map, every label folder must be in it (a typo never becomes a new class silently).
The classes are the mapped labels present on disk (canonical spellings too), sorted.

Speakers: ``speaker_regex`` (default ``^(?P<speaker>[^_\\-./ ]+)[_\\-]``: the file name up to its first
``_`` or ``-``) is searched in the path below the label folder, so ``(?P<speaker>[^/]+)/`` takes the
speaker from a sub-folder. The named group ``speaker`` (or else group 1) is the speaker. A file the
regex does not match is an error naming the file. ``speaker_regex=none``: the corpus has no speaker
ids.

Keys: the path relative to the root, without the suffix (``angry/spk03_take2``).

Folds: the corpus has no published folds, so scheme ``emobox`` uses emobox's speaker-independent
rule (4-6 speakers: leave one speaker out; more: folds of about 4 speakers, at most ``folds``,
default 6; validation from held-out training speakers). Without speaker ids, a seeded stratified
``folds``-fold split of the utterances (default 5; speaker-dependent, and the run says so). A
``folds`` the data cannot give (fewer speakers, or fewer utterances than folds) is warned about,
naming the number of folds built instead.

Name: ``name=mylab`` names the corpus in run folders, results, reports and leaderboards (default
``folder``), so that two datasets read by this plugin stay apart: letters, digits, ``.``, ``-`` and
``_``, at most 64, and not the name of another registered corpus.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from emobox import Corpus, CorpusSpec, DataError, EmoboxUsageError, FoldTableRow, Utterance, hookimpl
from emobox.datasets.corpus import AUDIO_SUFFIXES, _is_junk, _listdir
from emobox.datasets.labels import canonical
from emobox.datasets.splits import seeded_order

DEFAULT_SPEAKER_REGEX = r"^(?P<speaker>[^_\-./ ]+)[_\-]"
LABEL_FILES = ("labels.json", "labels.tsv")
DROP = {"-", "", "none", "null"}
OPTIONS = ("name", "speaker_regex", "label_map", "folds", "language")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LAYOUT = "one folder per emotion label: <label>/<speaker>_<...>.wav"


class FolderCorpus(Corpus):
    name = "folder"
    languages = ()
    expected_top_level = LAYOUT

    def __init__(self, root: str | Path, speaker_regex: str | None = DEFAULT_SPEAKER_REGEX,
                 label_map: str | Mapping[str, Any] | None = None, folds: int | None = None,
                 language: str | None = None, name: str | None = None):
        if name is not None:
            self.name = _checked_name(name)
        if root is None:
            raise EmoboxUsageError("corpus 'folder' needs --root DIR (a folder holding one "
                                   "folder per emotion label)")
        super().__init__(root)
        if language:
            self.languages = (str(language),)
        self.speaker_re = _compile(speaker_regex)
        self.has_speaker_ids = self.speaker_re is not None
        if folds is not None and (not isinstance(folds, int) or isinstance(folds, bool)
                                  or folds < 2):
            raise EmoboxUsageError(f"corpus 'folder': folds must be an integer >= 2, got "
                                   f"{folds!r}")
        self.n_folds = folds
        if folds is not None:
            self.max_folds = folds
        self.label_source, mapping = self._label_map(label_map)
        self.dropped_labels = frozenset(k for k, v in mapping.items() if v is None)
        self.label_map = {k: canonical(v) or v for k, v in mapping.items() if v is not None}
        self.labels = ()

    @classmethod
    def locate_root(cls, root: Path) -> Path:
        root = super().locate_root(root)
        entries = [e for e in _listdir(root) if not _is_junk(e)]
        if not entries:
            raise EmoboxUsageError(f"corpus 'folder': root {root} is empty; expected {LAYOUT}")
        dirs = [e for e in entries if (root / e).is_dir()]
        audio_here = [e for e in entries if (root / e).is_file() and _is_audio(e)]
        if len(dirs) == 1 and not audio_here:
            inner = root / dirs[0]  # an extra top folder, as unpacked archives have
            if any((inner / e).is_dir() for e in _listdir(inner) if not _is_junk(e)):
                return inner
        if not dirs:
            example = f", e.g. {audio_here[0]}" if audio_here else ""
            raise EmoboxUsageError(
                f"corpus 'folder': root {root} has no label folders ({len(audio_here)} audio "
                f"files lie directly in it{example}); put each file in a folder named after its "
                f"emotion: {root}/<label>/<speaker>_<...>.wav")
        return root

    def _label_map(self, option: str | Mapping[str, Any] | None
                   ) -> tuple[str, dict[str, str | None]]:
        """(where the map came from, folder -> class or None to drop)."""
        if isinstance(option, Mapping):
            return "--corpus-option label_map", _checked_map(option, "--corpus-option label_map")
        if isinstance(option, str) and option.strip():
            path = Path(option).expanduser()
            if path.suffix.lower() in (".json", ".tsv", ".txt") or path.exists():
                if not path.is_file():
                    raise EmoboxUsageError(f"corpus 'folder': label map file {path} does not "
                                           f"exist")
                return str(path), _read_label_file(path)
            return "--corpus-option label_map", _parse_pairs(option)
        for name in LABEL_FILES:
            path = self.root / name
            if path.is_file():
                return str(path), _read_label_file(path)
        return "", {}

    def scan(self):
        label_dirs = [d for d in _listdir(self.root)
                      if (self.root / d).is_dir() and not _is_junk(d)]
        if self.label_map or self.dropped_labels:
            unknown = [d for d in label_dirs if self._map_key(d) is None]
            if unknown:
                raise DataError(
                    f"corpus 'folder': label folder {self.root / unknown[0]} is not in the label "
                    f"map ({self.label_source}); known folders: "
                    f"{', '.join(sorted(set(self.label_map) | self.dropped_labels))}. Map it to a "
                    f"class, or to '-' to leave it out", path=str(self.root / unknown[0]))
        self.labels = tuple(sorted({self._class_of(d) for d in label_dirs
                                    if self._map_key(d) not in self.dropped_labels}))
        utts = []
        for rel in self.iter_files():
            label_dir, _, below = rel.partition("/")
            if not below:  # a file directly in the root
                self.skipped.append((rel, "not inside a label folder"))
                continue
            if self._map_key(label_dir) in self.dropped_labels:
                self.skipped.append((rel, f"label folder {label_dir!r} is dropped by the map"))
                continue
            utts.append(Utterance(
                key=rel.rsplit(".", 1)[0], path=rel, speaker=self._speaker(below, rel),
                raw_label=label_dir, label=self._class_of(label_dir)))
        if not utts:
            raise DataError(f"corpus 'folder': no audio files ({', '.join(AUDIO_SUFFIXES)}) "
                            f"under the label folders of {self.root}", path=str(self.root))
        present = Counter(u.label for u in utts)
        self._refuse_lookalike_classes(utts)
        self.labels = tuple(sorted(present))
        if len(self.labels) < 2:
            raise DataError(f"corpus 'folder': {self.root} has only one class "
                            f"({self.labels[0]!r}); emotion recognition needs at least two label "
                            f"folders", path=str(self.root))
        return self.make_manifest(utts)

    def _map_key(self, folder: str) -> str | None:
        """The label map's entry for ``folder`` (its name, or its name without surrounding
        spaces, as a map written on the command line holds it); None when it has none."""
        for key in (folder, folder.strip()):
            if key in self.label_map or key in self.dropped_labels:
                return key
        return None

    def _class_of(self, folder: str) -> str:
        key = self._map_key(folder)
        return self.label_map[key] if key in self.label_map else canonical(folder) or folder

    def folds(self, scheme: str = "emobox", seed: int = 0, manifest=None):
        folds = super().folds(scheme=scheme, seed=seed, manifest=manifest)
        if self.n_folds is not None and scheme == "emobox":
            manifest = manifest or self.manifest
            built = sum(1 for f in folds if f.test)
            if built != self.n_folds:
                if self.has_speaker_ids:
                    n_spk = len(manifest.speakers())
                    why = (f"{n_spk} speakers give {built} speaker-independent folds"
                           + (" (leave one speaker out)" if n_spk <= 6 else ""))
                else:
                    largest = max(Counter(u.label for u in manifest).values())
                    why = (f"the stratified split of {len(manifest)} utterances ({largest} in "
                           f"the largest class) gives {built} folds")
                warnings.warn(f"corpus {self.name!r}: folds={self.n_folds} cannot be honoured: "
                              f"{why}", stacklevel=2)
        return folds

    def _refuse_lookalike_classes(self, utts: list[Utterance]) -> None:
        """Two classes whose names differ only in case or surrounding spaces (``Angry/`` and
        ``angry /``) are almost surely one emotion: refused, naming both folders, rather than
        trained as two classes or merged behind the user's back."""
        folders: dict[str, set[str]] = {}
        for u in utts:
            folders.setdefault(u.label, set()).add(u.raw_label)
        for label in sorted(folders):  # two folders spelling one canonical class
            unmapped = sorted(f for f in folders[label] if self._map_key(f) is None)
            if len(unmapped) > 1:
                a, b = unmapped[:2]
                alike = " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
                raise DataError(
                    f"corpus 'folder': label folders {a!r} and {b!r} in {self.root} both stand "
                    f"for the class {label!r}"
                    + (" (they differ only in upper/lower case or spaces)" if alike else "")
                    + "; folders are not merged unasked. Move the files of one folder into the "
                    "other, or map both to one class with --corpus-option label_map=FILE (a "
                    "labels.json folder -> class)", path=str(self.root / b))
        seen: dict[str, str] = {}
        for label in sorted(folders):
            norm = " ".join(label.split()).casefold()
            if norm in seen:
                a, b = sorted(folders[seen[norm]])[0], sorted(folders[label])[0]
                raise DataError(
                    f"corpus 'folder': label folders {a!r} and {b!r} in {self.root} give the "
                    f"classes {seen[norm]!r} and {label!r}, which differ only in upper/lower "
                    f"case or spaces; they would be trained as two classes. Move the files of "
                    f"one folder into the other, or map both to one class with "
                    f"--corpus-option label_map=FILE (a labels.json folder -> class)",
                    path=str(self.root / b))
            seen[norm] = label

    def _speaker(self, below: str, rel: str) -> str | None:
        if self.speaker_re is None:
            return None
        m = self.speaker_re.search(below)
        speaker = None
        if m:
            groups = m.groupdict()
            speaker = groups.get("speaker") if "speaker" in groups else (
                m.group(1) if m.re.groups else m.group(0))
        if not speaker:
            raise DataError(
                f"corpus 'folder': speaker regex {self.speaker_re.pattern!r} does not match "
                f"{rel} ({self.root / rel}); pass --corpus-option speaker_regex=REGEX with a "
                f"group named 'speaker', or speaker_regex=none if the corpus has no speaker ids",
                path=str(self.root / rel))
        return speaker

    def fold_table(self) -> dict[str, FoldTableRow] | None:
        if self.has_speaker_ids:
            return None  # emobox's speaker-independent rule
        k = self.n_folds or 5
        table = {}
        by_label: dict[str, list[str]] = {}
        for u in self.manifest:
            by_label.setdefault(u.label, []).append(u.key)
        for label in sorted(by_label):
            for i, key in enumerate(seeded_order(by_label[label], 0, f"folder/{label}")):
                table[key] = FoldTableRow(test_fold=i % k + 1, valid=False)
        return table


def _compile(regex: str | None) -> re.Pattern | None:
    if regex is None or (isinstance(regex, str) and regex.strip().lower() in ("none", "")):
        return None
    if not isinstance(regex, str):
        raise EmoboxUsageError(f"corpus 'folder': speaker_regex must be a string, got {regex!r}")
    try:
        return re.compile(regex)
    except re.error as exc:
        raise EmoboxUsageError(f"corpus 'folder': speaker_regex {regex!r} is not a valid regular "
                               f"expression: {exc}")


def _target(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in DROP else text


def _checked_map(data: Mapping[Any, Any], where: str) -> dict[str, str | None]:
    """folder -> class (None: drop) of a mapping read from JSON or YAML: every class a string
    of one line (or null / "-" to drop the folder)."""
    out: dict[str, str | None] = {}
    for folder, target in data.items():
        if target is not None and not isinstance(target, str):
            raise EmoboxUsageError(f"corpus 'folder': {where}: folder {str(folder)!r} maps to "
                                   f"{target!r}, not a class name (a string)")
        if target is not None and re.search(r"[\x00-\x1f\x7f]", target):
            raise EmoboxUsageError(f"corpus 'folder': {where}: the class of folder "
                                   f"{str(folder)!r} holds a tab or line break ({target!r})")
        out[str(folder)] = _target(target)
    return out


def _parse_pairs(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        folder, sep, target = part.partition(":")
        if not sep or not folder.strip():
            raise EmoboxUsageError(f"corpus 'folder': label_map entry {part!r}: expected "
                                   f"folder:class (e.g. label_map=ang:angry,hap:happy)")
        out[folder.strip()] = _target(target)
    return out


def _read_label_file(path: Path) -> dict[str, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EmoboxUsageError(f"corpus 'folder': cannot read label map {path}: {exc}")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EmoboxUsageError(f"corpus 'folder': label map {path} is not valid JSON: {exc}")
        if not isinstance(data, dict):
            raise EmoboxUsageError(f"corpus 'folder': label map {path} must be a JSON object "
                                   f"folder -> class")
        return _checked_map(data, f"label map {path}")
    out: dict[str, str | None] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise EmoboxUsageError(f"corpus 'folder': {path}:{lineno}: expected "
                                   f"'folder<TAB>class', got {line!r}")
        out[fields[0].strip()] = _target(fields[1])
    return out


def _checked_name(name: Any) -> str:
    """The ``name`` option: safe in a folder name and distinct from the registered corpora."""
    text = str(name)
    if not NAME_RE.fullmatch(text) or "__" in text:
        raise EmoboxUsageError(
            f"corpus 'folder': name {text!r} is not a valid corpus name: use letters, digits, "
            f"'.', '-' and '_' (no '__'), starting with a letter or digit, at most 64 characters")
    if text != "folder":
        from emobox.plugin.registry import get_registry

        if text.casefold() in {n.casefold() for n in get_registry().names("corpus")}:
            raise EmoboxUsageError(
                f"corpus 'folder': name {text!r} is the name of a registered corpus; choose "
                f"another, so that results on this folder are not taken for that corpus's")
    return text


def _is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_SUFFIXES)


def build(root: str | Path | None, **options: Any) -> FolderCorpus:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmoboxUsageError(f"corpus 'folder': unknown option {unknown[0]!r}; options: "
                               f"{', '.join(OPTIONS)}")
    return FolderCorpus(root, **options)


@hookimpl
def emobox_corpora():
    return [CorpusSpec(
        name="folder", build=build, expected_top_level=LAYOUT, reader=True,
        description="your own corpus: one folder per emotion label, speakers from file names "
                    "(options: name, speaker_regex, label_map, folds, language)")]
