#!/usr/bin/env python3
"""Build emobox's package data from EmoBox's published metadata (the reference tables).

Reads ``<shared>/emobox-reference/`` (one ``<corpus>.tsv.gz`` per corpus: every utterance's key,
path, channel, segment, speaker, raw and mapped label, test fold and official-valid flag;
``corpora.json``; ``cross_corpus/<corpus>.jsonl``; ``paper_tables.json``), checks every table's
columns and key uniqueness, and writes

    corpora/reference/<corpus>.tsv.gz         the fold membership and facts the adapters ship
    corpora/reference/corpora.json            per-corpus counts, label maps, known problems
    corpora/reference/cross_corpus/*.jsonl    the cross-corpus balanced test sets
    emobox/data/paper_tables.json             the paper's tables (reports show them beside yours)

Tables are re-compressed deterministically (gzip mtime 0), so re-running gives identical bytes.

    python scripts/build_reference_data.py [--source ../shared/emobox-reference]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["key", "path", "channel", "start", "end", "sample_rate", "duration", "speaker",
           "emotion_raw", "emotion", "test_fold", "valid"]


def rebuild_table(src: Path, dst: Path) -> int:
    text = gzip.decompress(src.read_bytes()).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if rows[0] != COLUMNS:
        raise SystemExit(f"{src}: unexpected columns {rows[0]}")
    keys = [r[0] for r in rows[1:]]
    if len(set(keys)) != len(keys):
        raise SystemExit(f"{src}: duplicate keys")
    for r in rows[1:]:
        int(r[10]), int(r[11])  # test_fold and valid are integers
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows(rows)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue().encode("utf-8"))
    dst.write_bytes(out.getvalue())
    return len(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "emobox-reference")
    args = parser.parse_args()
    ref_out = REPO / "corpora" / "reference"
    (ref_out / "cross_corpus").mkdir(parents=True, exist_ok=True)
    corpora = json.loads((args.source / "corpora.json").read_text())
    total = 0
    for name in sorted(corpora):
        n = rebuild_table(args.source / f"{name}.tsv.gz", ref_out / f"{name}.tsv.gz")
        if n != corpora[name]["utterances"]:
            raise SystemExit(f"{name}: table has {n} rows, corpora.json says "
                             f"{corpora[name]['utterances']}")
        total += n
    (ref_out / "corpora.json").write_text(json.dumps(corpora, indent=1, sort_keys=True,
                                                     ensure_ascii=False) + "\n")
    for src in sorted((args.source / "cross_corpus").glob("*.jsonl")):
        shutil.copyfile(src, ref_out / "cross_corpus" / src.name)
    shutil.copyfile(args.source / "paper_tables.json", REPO / "emobox" / "data" /
                    "paper_tables.json")
    print(f"{len(corpora)} corpora, {total} utterances -> {ref_out}")


if __name__ == "__main__":
    main()
