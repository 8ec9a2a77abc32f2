"""The worker's Faust table, one routeq store per partition.

The table (``rocksdb://``) keeps one rocksdict database per partition; the
worker writes the rows of a batch into each partition's database directly
(Faust's ``table[k] = v`` files a row under the partition of the event being
handled, and a batch mixes partitions), through the store interface of
streams/embedded/store.py.
"""

from __future__ import annotations

from typing import Any

from streams.embedded.store import RocksStore, write_rows


def partition_store(table: Any, partition: int, *, wal: bool = True) -> RocksStore:
    """Partition ``partition`` of a Faust rocksdb table as a store."""
    data = table.data
    return RocksStore.over(data._db_for_partition(partition), f"table partition {partition}",
                           wal=wal)


def clear(store: RocksStore) -> None:
    """Delete every row of ``store`` in one write."""
    write_rows(store, [(key, None) for key, _ in store.items(b"")])
