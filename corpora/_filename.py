"""One scanner for the corpora whose labels and speakers are coded in file names and folders.

An adapter of this kind is a short declaration: which files (``suffixes``), how their relative
paths look (``patterns``: regular expressions with named groups, matched against the whole path
after Unicode NFC normalisation, with ``/`` separators and the suffix in lower case), and how the
EmoBox key, the speaker and the raw label are formed from the groups (``str.format`` templates).
Corpus quirks that a template cannot say go in :meth:`FileNameCorpus.fields`, which derives more
fields from the groups or returns the reason to skip a file.

What the scanner guarantees for every adapter:

- a file whose path fits no pattern is not used, and is recorded in ``skipped`` with the layout
  it should follow; so is a file the adapter skips on purpose (with the adapter's reason);
- an unknown raw label is a :class:`emobox.DataError` naming the file and the label;
- two files giving one key are an error naming both, unless the corpus is known to ship copies
  (``keep_first_copy``): then the preferred copy is kept and the other recorded in ``skipped``;
- paths in the manifest are the paths on disk (so NFD names and upper-case suffixes load), while
  keys, speakers and labels come from the normalised form (so they equal EmoBox's).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Mapping

from emobox import DataError, Manifest, Utterance
from emobox.datasets.corpus import nfc

from ._emobox import EmoboxCorpus


class FileNameCorpus(EmoboxCorpus):
    """Base of the declarative file-name adapters."""

    suffixes: ClassVar[tuple[str, ...]] = (".wav",)
    patterns: ClassVar[tuple[str, ...]] = ()  # regexes over the normalised relative path
    key: ClassVar[str] = ""  # template, e.g. "ravdess-{stem}"
    speaker: ClassVar[str] = "{spk}"  # template of the real speaker id
    emobox_speaker: ClassVar[str] = ""  # template of EmoBox's speaker field, where it differs
    raw_label: ClassVar[str] = "{emo}"  # template of the raw label (the label map's keys)
    only_under: ClassVar[str] = ""  # folder EmoBox read; files elsewhere are skipped with a reason
    keep_first_copy: ClassVar[bool] = False  # the download holds several copies of files
    prefer: ClassVar[tuple[str, ...]] = ()  # path parts marking the copy to keep

    _regexes: ClassVar[tuple[re.Pattern, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "patterns" in cls.__dict__:
            cls._regexes = tuple(re.compile(p) for p in cls.patterns)

    @classmethod
    def fields(cls, g: dict[str, str]) -> dict[str, str] | str:
        """Fields for the templates from the match groups (plus ``path``, ``name``, ``stem``,
        ``stem_dashed`` (the stem with ``_`` as ``-``, as EmoBox keyed several corpora), ``dir``),
        or a string: the reason this file is skipped on purpose."""
        return g

    @classmethod
    def parse(cls, path: str) -> dict[str, str] | str:
        """The template fields of one relative path, or why it is not an utterance."""
        norm = nfc(path)
        head, dot, suffix = norm.rpartition(".")
        norm = f"{head}.{suffix.lower()}" if dot else norm
        for rx in cls._regexes:
            m = rx.fullmatch(norm)
            if m:
                break
        else:
            return f"name does not follow the layout {cls.expected_top_level}"
        directory, _, name = norm.rpartition("/")
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        stem = name.rpartition(".")[0]
        g.update(path=norm, dir=directory, name=name, stem=stem, stem_dashed=stem.replace("_", "-"))
        return cls.fields(g)

    def scan(self) -> Manifest:
        by_key: dict[str, Utterance] = {}
        for rel in self.iter_files(self.suffixes):
            if self.only_under and not nfc(rel).startswith(self.only_under + "/"):
                self.skipped.append((rel, f"outside {self.only_under}/, the part EmoBox used"))
                continue
            g = self.parse(rel)
            if isinstance(g, str):
                self.skipped.append((rel, g))
                continue
            utt = self._utterance(rel, g)
            other = by_key.get(utt.key)
            if other is not None:
                if not self.keep_first_copy:
                    raise DataError(f"{self.name}: {self.root / other.path} and "
                                    f"{self.root / rel} give the same utterance key {utt.key!r}; "
                                    f"remove the extra copy", path=str(self.root / rel))
                keep, drop = sorted((other, utt), key=self._copy_rank)
                by_key[utt.key] = keep
                self.skipped.append((drop.path, f"another copy of {utt.key} (kept {keep.path})"))
                continue
            by_key[utt.key] = utt
        if not by_key:
            raise DataError(f"{self.name}: no audio named as this corpus names it under "
                            f"{self.root} (expected {self.expected_top_level}; "
                            f"{len(self.skipped)} files skipped)", path=str(self.root))
        return self.make_manifest(sorted(by_key.values(), key=lambda u: u.key))

    def _utterance(self, rel: str, g: Mapping[str, str]) -> Utterance:
        try:
            key = self.key.format(**g)
            speaker = self.speaker.format(**g)
            raw = self.raw_label.format(**g)
            emobox_speaker = self.emobox_speaker.format(**g) if self.emobox_speaker else speaker
        except KeyError as exc:  # a template names a field the pattern did not give
            raise DataError(f"{self.name}: cannot read field {exc} from {self.root / rel}",
                            path=str(self.root / rel))
        custom = {"emobox_speaker": emobox_speaker} if emobox_speaker != speaker else {}
        return Utterance(key=key, path=rel, label=self.map_label(raw, rel), speaker=speaker,
                         raw_label=raw, custom=custom)

    def _copy_rank(self, utt: Utterance) -> tuple:
        path = nfc(utt.path)
        return (not any(p in path for p in self.prefer), path.count("/"), len(path), path)
