"""glibc's heap kept during CPU extraction: what is asked of malloc, when, and what the store
records."""

from __future__ import annotations

import platform
import threading

import pytest

import emobox.extraction.allocator as allocator
from emobox.extraction.allocator import heap_kept, heap_setting, pad_for
from emobox.extraction.extract import extract

from extract_fakes import TinyHF, tone_corpus


class FakeLibc:
    def __init__(self, refuse: int | None = None):
        self.calls: list[tuple] = []
        self.refuse = refuse

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 0 if param == self.refuse else 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fake(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "_glibc", lambda: libc)
    monkeypatch.delenv(allocator.ENV, raising=False)
    return libc


def test_the_heap_is_kept_for_the_block_and_given_back_after(fake):
    with heap_kept(512 << 20) as tuned:
        assert tuned
        assert fake.calls == [("mallopt", -3, 32 << 20), ("mallopt", -2, 512 << 20)]
    assert fake.calls[2:] == [("mallopt", -2, 128 * 1024), ("malloc_trim", 0)]


def test_nested_and_concurrent_blocks_tune_once(fake):
    inner: list[bool] = []
    with heap_kept(1 << 30):
        with heap_kept(1 << 30) as nested:
            inner.append(nested)
        def other_thread():
            with heap_kept(1 << 30) as tuned:
                inner.append(tuned)

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert fake.calls == [("mallopt", -3, 32 << 20), ("mallopt", -2, 1 << 30)]
    assert inner == [False, False]
    assert fake.calls[-1] == ("malloc_trim", 0)


def test_nothing_is_tuned_when_switched_off_refused_or_off_glibc(fake, monkeypatch):
    monkeypatch.setenv(allocator.ENV, "0")
    assert heap_setting(1 << 30) is None
    with heap_kept(1 << 30) as tuned:
        assert not tuned
    assert fake.calls == []
    monkeypatch.delenv(allocator.ENV)
    refusing = FakeLibc(refuse=-2)
    monkeypatch.setattr(allocator, "_glibc", lambda: refusing)
    with heap_kept(1 << 30) as tuned:
        assert not tuned
    assert ("malloc_trim", 0) not in refusing.calls  # nothing to undo
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert heap_setting(1 << 30) is None


def test_the_pad_is_half_the_memory_budget_at_most_one_gib():
    assert pad_for(2 << 30) == 1 << 30
    assert pad_for(8 << 30) == 1 << 30
    assert pad_for(512 << 20) == 256 << 20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_glibc_accepts_the_settings(monkeypatch):
    monkeypatch.delenv(allocator.ENV, raising=False)
    with heap_kept(64 << 20) as tuned:
        assert tuned


def test_the_store_records_the_allocator_setting(tmp_path, monkeypatch, fake):
    corpus = tone_corpus(tmp_path / "c", [0.5, 1.0, 1.5])
    store = extract(TinyHF("layer"), corpus, [1], store_dir=tmp_path / "s",
                    memory_budget=1 << 30)
    assert store.meta["engine"]["allocator"] == (
        "glibc heap kept: allocations up to 32 MiB from the heap, 512 MiB of freed memory kept")
    assert ("mallopt", -2, 512 << 20) in fake.calls and fake.calls[-1] == ("malloc_trim", 0)
    monkeypatch.setenv(allocator.ENV, "0")
    off = extract(TinyHF("layer"), corpus, [1], store_dir=tmp_path / "off")
    assert "allocator" not in off.meta["engine"]
