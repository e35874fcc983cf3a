"""emobox plugin: ``example_corpus``, a lab's in-house emotional speech recordings.

Corpus card
    What: acted emotional speech recorded by one lab, one folder per label code.
    License: the lab's own; nothing is downloaded (``scan`` only reads the local copy).
    Layout: ``ROOT/<code>/<speaker>_<take>.<wav|flac>`` plus ``ROOT/labels.tsv``
        (``code<TAB>class`` per line, ``#`` comments, class ``-`` = leave the folder out).
        An extra top folder (an unpacked archive) is found by itself.
    Labels: the classes of the label map, sorted; a folder missing from the map is an error
        naming it. The map may instead come from ``--corpus-option label_map=ang:angry,...``.
    Speakers: the file name up to the first ``_``; a file without one is an error naming it.
    Folds (scheme ``emobox``): speakers sorted by id are dealt round-robin into ``folds`` groups
        (default 4, option ``folds``). Fold k: test = group k, validation = group k+1
        (cyclically), train = the other groups. Speaker-independent in test *and* selection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import emobox
from emobox import Corpus, DataError, EmoboxUsageError, Fold, Utterance

__version__ = "0.2.0"

NAME = "example_corpus"
LABEL_FILE = "labels.tsv"
OPTIONS = ("label_map", "folds")


class ExampleCorpus(Corpus):
    name = NAME
    languages = ("English",)
    expected_top_level = f"{LABEL_FILE} and one folder per label code holding <speaker>_<take>.wav"
    markers = ("*/*_*.wav", "*/*_*.flac", "*/*_*.WAV", LABEL_FILE)

    def __init__(self, root: str | Path | None, label_map: Any = None, folds: int = 4):
        if root is None:
            raise EmoboxUsageError(f"corpus {NAME!r} needs --root DIR (or $EMOBOX_DATA/{NAME})")
        super().__init__(root)
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 3:
            raise EmoboxUsageError(f"{NAME}: folds must be an integer >= 3 (test, validation "
                                   f"and training groups), got {folds!r}")
        self.n_folds = folds
        mapping = self._read_label_map(label_map)
        self.label_map = {k: v for k, v in mapping.items() if v != "-"}
        self.dropped_labels = frozenset(k for k, v in mapping.items() if v == "-")
        self.labels = tuple(sorted(set(self.label_map.values())))

    def _read_label_map(self, option: Any) -> dict[str, str]:
        if isinstance(option, Mapping):
            return {str(k): str(v) for k, v in option.items()}
        if isinstance(option, str):
            pairs = [p.split(":", 1) for p in option.split(",") if p.strip()]
            if not pairs or any(len(p) != 2 for p in pairs):
                raise EmoboxUsageError(f"{NAME}: label_map {option!r}: expected "
                                       f"code:class,code:class (class '-' leaves a code out)")
            return {code.strip(): cls.strip() for code, cls in pairs}
        path = self.root / LABEL_FILE
        if not path.is_file():
            raise EmoboxUsageError(
                f"{NAME}: no label map: put {LABEL_FILE} in {self.root} (one line per label "
                f"folder: <folder><TAB><class>) or pass --corpus-option "
                f"label_map=ang:angry,hap:happy,...")
        mapping = {}
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = [f.strip() for f in line.split("\t")]
            if len(fields) != 2 or not all(fields):
                raise DataError(f"{path}:{lineno}: expected <folder><TAB><class>, got {line!r}",
                                path=str(path))
            mapping[fields[0]] = fields[1]
        return mapping

    def scan(self) -> emobox.Manifest:
        utts = []
        for rel in self.iter_files((".wav", ".flac")):
            folder, _, name = rel.partition("/")
            if not name or "/" in name:
                self.skipped.append((rel, "not directly inside a label folder"))
                continue
            speaker, sep, _ = name.partition("_")
            if not sep or not speaker:
                raise DataError(f"{NAME}: file name {rel!r} does not start with <speaker>_ "
                                f"({self.root / rel})", path=str(self.root / rel))
            label = self.map_label(folder, rel)  # unknown folder: an error naming the file
            if label is None:
                continue  # a folder the map leaves out
            utts.append(Utterance(key=rel.rsplit(".", 1)[0], path=rel, label=label,
                                  speaker=speaker, raw_label=folder))
        return self.make_manifest(utts)

    def folds(self, scheme: str = "emobox", seed: int = 0,
              manifest: emobox.Manifest | None = None) -> list[Fold]:
        """The corpus's own protocol (see the module docstring); other schemes: emobox's."""
        if scheme != "emobox":
            return super().folds(scheme, seed, manifest)
        manifest = manifest or self.manifest
        speakers = manifest.speakers()
        if len(speakers) < self.n_folds:
            raise EmoboxUsageError(f"{NAME}: {len(speakers)} speakers cannot fill {self.n_folds} "
                                   f"folds; pass --corpus-option folds=N with N <= "
                                   f"{len(speakers)}")
        group = {spk: i % self.n_folds for i, spk in enumerate(speakers)}
        folds = []
        for k in range(self.n_folds):
            role = {k: "test", (k + 1) % self.n_folds: "valid"}
            keys: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
            for u in manifest:
                keys[role.get(group[u.speaker], "train")].append(u.key)
            folds.append(Fold(k + 1, tuple(keys["train"]), tuple(keys["valid"]),
                              tuple(keys["test"]), scheme="emobox",
                              valid_rule="next-speaker-group"))
        return folds


def build(root: str | Path | None, **options: Any) -> ExampleCorpus:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmoboxUsageError(f"{NAME}: unknown option {unknown[0]!r}; options: "
                               f"{', '.join(OPTIONS)}")
    return ExampleCorpus(root, **options)


@emobox.hookimpl
def emobox_corpora() -> list[emobox.CorpusSpec]:
    return [emobox.CorpusSpec(
        name=NAME, build=build, languages=ExampleCorpus.languages, license="(the lab's own)",
        expected_top_level=ExampleCorpus.expected_top_level,
        description="example plugin: a lab's folder-per-label recordings, label map in "
                    "labels.tsv, speaker-group folds")]
