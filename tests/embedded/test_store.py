"""One behaviour suite for every state store (quix-streams style).

The embedded runtime's durability rests on four promises: ``get`` sees what
was written, a batch lands whole, ``items`` walks one prefix in byte order,
and what a ``RocksStore`` wrote is there after it is closed and reopened.
Faust tables will join this suite with their own fixture.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.embedded.store import MemoryStore, RocksStore, Store, StoreError, write_rows

Opener = Callable[[], Store]


@pytest.fixture(params=["memory", "rocksdict"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """A function giving the store; called again, it gives the same store reopened."""
    opened: list[Store] = []
    if request.param == "memory":
        mem = MemoryStore()

        def opener() -> Store:
            return mem
    else:
        def opener() -> Store:
            for s in opened:
                s.close()
            opened.clear()
            s = RocksStore(tmp_path / "state")
            opened.append(s)
            return s
    yield opener
    for s in opened:
        s.close()


def put(store: Store, *pairs: tuple[bytes, bytes | None]) -> None:
    write_rows(store, pairs)


def test_get_sees_what_was_written_and_none_otherwise(reopen: Opener) -> None:
    s = reopen()
    assert s.get(b"Ma") is None
    put(s, (b"Ma", b"1"), (b"Mb", b"\x00\xff"))
    assert s.get(b"Ma") == b"1"
    assert s.get(b"Mb") == b"\x00\xff"
    assert s.get(b"M") is None


def test_later_put_in_a_batch_wins_and_delete_removes(reopen: Opener) -> None:
    s = reopen()
    put(s, (b"k", b"1"), (b"k", b"2"), (b"gone", b"x"))
    put(s, (b"gone", None), (b"never", None))
    assert s.get(b"k") == b"2"
    assert s.get(b"gone") is None
    assert list(s.items(b"never")) == []


def test_items_walks_one_prefix_in_byte_order(reopen: Opener) -> None:
    s = reopen()
    keys = [b"L" + (i).to_bytes(8, "big") for i in (300, 2, 256, 1, 70000)]
    put(s, *((k, k[-2:]) for k in keys), (b"K\xff", b"before"), (b"M", b"after"))
    got = [k for k, _ in s.items(b"L")]
    assert got == sorted(keys)
    assert [int.from_bytes(k[1:], "big") for k in got] == [1, 2, 256, 300, 70000]
    assert dict(s.items(b"L"))[keys[0]] == keys[0][-2:]


def test_items_starts_at_a_key_within_the_prefix(reopen: Opener) -> None:
    s = reopen()
    put(s, *((b"L" + i.to_bytes(8, "big"), b"v") for i in range(10)))
    got = [int.from_bytes(k[1:], "big") for k, _ in s.items(b"L", (7).to_bytes(8, "big"))]
    assert got == [7, 8, 9]
    assert list(s.items(b"L", (10).to_bytes(8, "big"))) == []


def test_values_are_bytes_of_any_content(reopen: Opener) -> None:
    s = reopen()
    blob = bytes(range(256)) * 300
    put(s, (b"E\x00t\x00id\x00with\x00nul", blob), (b"empty", b""))
    assert s.get(b"E\x00t\x00id\x00with\x00nul") == blob
    assert s.get(b"empty") == b""


def test_a_batch_is_written_whole_and_survives_reopening(reopen: Opener) -> None:
    s = reopen()
    b = s.batch()
    for i in range(5000):
        b.put(b"L" + i.to_bytes(8, "big"), b"x" * 50)
    b.put(b"Mapplied", b"5000")
    assert s.get(b"Mapplied") is None  # nothing lands before write()
    s.write(b)
    s = reopen()
    assert s.get(b"Mapplied") == b"5000"
    assert sum(1 for _ in s.items(b"L")) == 5000


def test_items_is_a_snapshot_of_the_moment_it_starts(reopen: Opener) -> None:
    s = reopen()
    put(s, (b"Pa", b"1"), (b"Pc", b"3"))
    it = s.items(b"P")
    first = next(it)
    put(s, (b"Pb", b"2"))
    assert [first, *it] == [(b"Pa", b"1"), (b"Pc", b"3")]


def test_rocks_store_refuses_a_second_writer(tmp_path: Path) -> None:
    s = RocksStore(tmp_path / "state")
    try:
        with pytest.raises(StoreError, match="in use by another routeq"):
            RocksStore(tmp_path / "state")
        put(s, (b"Ma", b"1"))
        ro = RocksStore(tmp_path / "state", read_only=True)  # readers are welcome
        ro.close()
    finally:
        s.close()


def test_rocks_store_read_only_of_a_missing_dir_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open state dir"):
        RocksStore(tmp_path / "nothing", read_only=True)


# ------------------------------------------------------------------ a model

KEYS = st.sampled_from([b"L" + i.to_bytes(8, "big") for i in (0, 1, 255, 256, 4096)]
                       + [b"Ea\x00b", b"Ea\x00c", b"M", b"Mapplied", b"N\x00", b"L"])
OPS = st.lists(st.tuples(KEYS, st.one_of(st.none(), st.binary(max_size=20))), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.tuples(OPS, st.booleans()), max_size=8),
       prefix=st.sampled_from([b"", b"L", b"E", b"M", b"N"]),
       kind=st.sampled_from(["mem", "rocks"]))
def test_store_behaves_like_a_sorted_dict(
        batches: list[tuple[list[tuple[bytes, bytes | None]], bool]], prefix: bytes,
        kind: str) -> None:
    """Any sequence of batches (and reopenings) leaves the store equal to a dict
    model: ``get`` per key, ``items`` per prefix in byte order."""
    model: dict[bytes, bytes] = {}
    with tempfile.TemporaryDirectory() as d:
        store: Store = MemoryStore() if kind == "mem" else RocksStore(Path(d) / "s")
        try:
            for ops, reopen_after in batches:
                put(store, *ops)
                for k, v in ops:
                    if v is None:
                        model.pop(k, None)
                    else:
                        model[k] = v
                if reopen_after and kind == "rocks":
                    store.close()
                    store = RocksStore(Path(d) / "s")
                for k in {k for k, _ in ops}:
                    assert store.get(k) == model.get(k)
            want = sorted((k, v) for k, v in model.items() if k.startswith(prefix))
            assert list(store.items(prefix)) == want
        finally:
            store.close()
