"""The snapshot format, measured: speed, size, memory, incremental versions, diff.

Prints side-by-side tables (not a test; nothing here asserts):

1. per project size (10^4, 10^5, 10^6 annotations; write, read and each query in a fresh
   process, so each peak RSS is its own): write and read rows/s, SQL query time, bytes per
   annotation as Parquet chunks vs the same rows as JSON lines (plain and gzip), peak RSS;
2. re-versioning, per project size: bytes written, as a share of a full version, for 0%, 1%
   clustered (a run of consecutive items, as when one batch of images is re-labelled), 1%
   and 10% scattered (every 100th / 10th item) and one class renamed everywhere, each written
   against the base with deltas (the default policy), by one writer and by a capture in
   :data:`PARTITIONS` key ranges merged (as ``create --parallel`` writes); peak RSS of that
   process;
3. read, SQL and restore-read (every table through ``SnapshotReader.iter_batches``, the path
   restore and export use) of each changed version as the default policy stored it (with its
   delta, or whole when the policy compacted it) against the same rows written whole
   (compacted), and the compacted version measured a second time alongside, whose ratio to
   the first shows how far two measurements of the same reads differ on the machine;
4. diff of the 1% scattered change: from the deltas vs a full scan of both versions.

Run: ``uv run python benchmarks/format.py`` (``--sizes 10000 100000`` to choose the sizes;
the default is 10^4, 10^5 and 10^6 annotations, and 10^6 takes minutes).
Data comes from the seeded synthetic project in ``tests/strategies.py``: 10 figures per image,
rectangles and polygons with sub-pixel coordinates, a Supervisely-like raw JSON per figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.strategies, the synthetic project generator

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from labelvault.diff import diff  # noqa: E402
from labelvault.query import query  # noqa: E402
from labelvault.snapshot.delta import (  # noqa: E402
    DEFAULT_DELTA_POLICY,
    NO_DELTAS,
    key_range_slice,
)
from labelvault.snapshot.manifest import (  # noqa: E402
    Manifest,
    SnapshotSource,
    load_manifest,
    write_manifest,
)
from labelvault.snapshot.merge import merge_parts  # noqa: E402
from labelvault.snapshot.reader import SnapshotReader  # noqa: E402
from labelvault.snapshot.schema import TABLES  # noqa: E402
from labelvault.snapshot.writer import SnapshotWriter  # noqa: E402
from labelvault.storage.local import LocalStore  # noqa: E402
from tests.strategies import item_key, synthetic_project  # noqa: E402

SOURCE = {"platform": "supervisely", "instance": "bench.example", "project_id": "1"}
PREFIX = "supervisely/bench.example/1"
PER_ITEM = 10
REPEATS = 3
MAX_ROUNDS = 50
#: Seconds spent on each version measured, at the least, while rounds are short.
MIN_SECONDS = 1.5
#: Key ranges of the partitioned re-versioning (the project's own rows are one more part).
PARTITIONS = 4
HEAD_TABLES = frozenset({"project", "datasets"})


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class JsonSize:
    """Size of rows as JSON lines, plain and gzip, computed while streaming."""

    def __init__(self) -> None:
        self.plain = 0
        self.gzipped = 0
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)

    def add(self, batch: pa.RecordBatch) -> None:
        for row in batch.to_pylist():
            line = json.dumps(row, default=str, ensure_ascii=False).encode() + b"\n"
            self.plain += len(line)
            self.gzipped += len(self._gzip.compress(line))

    def finish(self) -> None:
        self.gzipped += len(self._gzip.flush())


def write(
    store: LocalStore,
    pages: Iterator[tuple[str, pa.RecordBatch]],
    json_size: JsonSize | None,
    *,
    previous: Manifest | None = None,
    compact: bool = False,
) -> tuple[Manifest, float]:
    """Write a version; return it and the seconds spent in the writer (not in generating)."""
    writer = SnapshotWriter(
        store,
        PREFIX,
        source=SOURCE,
        previous=previous,
        delta_policy=NO_DELTAS if compact else DEFAULT_DELTA_POLICY,
    )
    spent = 0.0
    for table, batch in pages:
        if json_size is not None and table == "annotations":
            json_size.add(batch)
        started = time.perf_counter()
        writer.write(table, batch)
        spent += time.perf_counter() - started
    started = time.perf_counter()
    manifest = writer.finish()
    return manifest, spent + time.perf_counter() - started


def write_partitioned(
    store: LocalStore,
    pages: Iterator[tuple[str, pa.RecordBatch]],
    cuts: list[str],
    previous: Manifest,
) -> Manifest:
    """A version written as a partitioned capture writes it: the project's own rows in one
    part, the rest in the key ranges ``cuts`` makes, each a delta against ``previous``."""
    ranges = list(zip(["", *cuts], [*cuts, None], strict=True))
    ranged = frozenset(TABLES) - HEAD_TABLES
    head = SnapshotWriter(store, PREFIX, source=SOURCE, previous=previous)
    parts = [
        SnapshotWriter(
            store,
            PREFIX,
            source=SOURCE,
            previous=previous,
            key_range=key_range,
            ranged_tables=ranged,
        )
        for key_range in ranges
    ]
    for table, batch in pages:
        if table in HEAD_TABLES:
            head.write(table, batch)
            continue
        for writer, (start, stop) in zip(parts, ranges, strict=True):
            inside = key_range_slice(batch, start or None, stop)
            if inside.num_rows:
                writer.write(table, inside)
    return merge_parts(
        store,
        PREFIX,
        [head.finish(), *(writer.finish() for writer in parts)],
        source=SnapshotSource.model_validate(SOURCE),
        ranges=[None, *ranges],
        ranged_tables=ranged,
        previous=previous,
    )


# --- children: each runs in its own process ------------------------------------------------


def child_write(annotations: int, folder: Path) -> dict[str, Any]:
    """Generate and write a project of ``annotations`` figures into ``folder``."""
    baseline = peak_rss_mb()
    store = LocalStore(folder / "store")
    json_size = JsonSize()
    items = range(annotations // PER_ITEM)
    manifest, seconds = write(
        store, synthetic_project(items, annotations_per_item=PER_ITEM), json_size
    )
    json_size.finish()
    (folder / "manifest").write_text(write_manifest(store, PREFIX, manifest))
    table = manifest.table("annotations")
    rows = sum(manifest.row_counts.values())
    return {
        "rows": rows,
        "write_rows_s": rows / seconds,
        "parquet_b": table.bytes / annotations,
        "json_b": json_size.plain / annotations,
        "json_gz_b": json_size.gzipped / annotations,
        "chunks": len(table.chunks),
        "rss_imports_mb": baseline,
        "rss_mb": peak_rss_mb(),
    }


def child_read(folder: Path) -> dict[str, Any]:
    """Read every annotation back, verifying every chunk."""
    store = LocalStore(folder / "store")
    manifest = load_manifest(store, (folder / "manifest").read_text())
    started = time.perf_counter()
    reader = SnapshotReader(store, manifest)
    rows = sum(batch.num_rows for batch in reader.iter_batches("annotations"))
    seconds = time.perf_counter() - started
    assert rows == manifest.table("annotations").rows
    return {"read_rows_s": rows / seconds, "rss_mb": peak_rss_mb()}


def child_query(folder: Path, verify: bool) -> dict[str, Any]:
    """A GROUP BY over every annotation, in DuckDB."""
    store = LocalStore(folder / "store")
    manifest = load_manifest(store, (folder / "manifest").read_text())
    sql = "SELECT class_name, count(*) AS n, avg(length(geometry)) FROM annotations GROUP BY 1"
    started = time.perf_counter()
    result = query(store, manifest, sql, verify=verify)
    seconds = time.perf_counter() - started
    assert sum(result.column("n").to_pylist()) == manifest.table("annotations").rows
    return {"seconds": seconds, "rss_mb": peak_rss_mb()}


def cache_pages(folder: Path, ids: list[int]) -> None:
    """Generate the base project once into one Arrow IPC file per table."""
    writers: dict[str, Any] = {}
    for table, batch in synthetic_project(ids, annotations_per_item=PER_ITEM):
        if table not in writers:
            writers[table] = pa.ipc.new_file(folder / f"{table}.arrow", batch.schema)
        writers[table].write_batch(batch)
    for writer in writers.values():
        writer.close()


def cached_pages(folder: Path, edited: set[int]) -> Iterator[tuple[str, pa.RecordBatch]]:
    """The cached project with the figures of ``edited`` items regenerated (streaming)."""
    replacements = (
        row
        for table, batch in synthetic_project(
            sorted(edited), annotations_per_item=PER_ITEM, edited=edited
        )
        if table == "annotations"
        for row in batch.to_pylist()
    )
    edited_keys = pa.array([item_key(i) for i in sorted(edited)], pa.string())
    for table in ("project", "datasets", "items", "annotations", "tags"):
        # Read, not memory-mapped: mapped pages of the cache would count in this RSS.
        with pa.OSFile(str(folder / f"{table}.arrow")) as source:
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                batch = reader.get_batch(index)
                if table != "annotations" or not edited:
                    yield table, batch
                    continue
                hit = pc.is_in(batch.column("item_key"), value_set=edited_keys)
                if not pc.any(hit).as_py():
                    yield table, batch
                    continue
                rows = batch.to_pylist()
                for position, is_edited in enumerate(hit.to_pylist()):
                    if is_edited:
                        replacement = next(replacements)
                        assert replacement["key"] == rows[position]["key"]
                        rows[position] = replacement
                yield table, pa.RecordBatch.from_pylist(rows, schema=batch.schema)


def renamed(
    pages: Iterator[tuple[str, pa.RecordBatch]], old: str, new: str
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """The pages with class ``old`` renamed to ``new`` everywhere (name, raw, fingerprint)."""
    for table, batch in pages:
        if table != "annotations":
            yield table, batch
            continue
        hit = pc.equal(batch.column("class_name"), old)
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["class_name"] = pc.if_else(hit, new, columns["class_name"])
        columns["raw"] = pc.if_else(
            hit,
            pc.replace_substring(columns["raw"], f'"classTitle":"{old}"', f'"classTitle":"{new}"'),
            columns["raw"],
        )
        fingerprints = columns["fingerprint"].to_pylist()
        changed = [
            hashlib.sha256(f"{fp}/{new}".encode()).hexdigest() if is_hit else fp
            for fp, is_hit in zip(fingerprints, hit.to_pylist(), strict=True)
        ]
        columns["fingerprint"] = pa.array(changed, pa.string())
        yield table, pa.RecordBatch.from_arrays(list(columns.values()), schema=batch.schema)


def timed_reads(store: LocalStore, manifests: dict[str, Manifest]) -> dict[str, dict[str, float]]:
    """Per version: rows/s reading annotations, SQL seconds, rows/s reading every table
    (restore's path).

    Each measurement takes the versions in turns, round after round, and keeps each version's
    best round: at least :data:`REPEATS` rounds, and more while they are short (up to
    :data:`MAX_ROUNDS`, until :data:`MIN_SECONDS` per version are spent), so one-time costs
    (first calls into Arrow's kernels, the page cache) and other work on the machine land on
    every version alike.
    """
    sql = "SELECT class_name, count(*) AS n, avg(length(geometry)) FROM annotations GROUP BY 1"

    def read(manifest: Manifest) -> int:
        reader = SnapshotReader(store, manifest)
        return sum(batch.num_rows for batch in reader.iter_batches("annotations"))

    def select(manifest: Manifest) -> int:
        result = query(store, manifest, sql)
        assert sum(result.column("n").to_pylist()) == manifest.table("annotations").rows
        return 0

    def restore(manifest: Manifest) -> int:
        everything = SnapshotReader(store, manifest)
        return sum(batch.num_rows for t in TABLES for batch in everything.iter_batches(t))

    results: dict[str, dict[str, float]] = {label: {} for label in manifests}
    for name, measure in (("read", read), ("sql", select), ("restore", restore)):
        best = dict.fromkeys(manifests, float("inf"))
        rows: dict[str, int] = {}
        rounds = 0
        spent = 0.0
        budget = MIN_SECONDS * len(manifests)
        while rounds < REPEATS or (spent < budget and rounds < MAX_ROUNDS):
            for label, manifest in manifests.items():
                started = time.perf_counter()
                rows[label] = measure(manifest)
                seconds = time.perf_counter() - started
                best[label] = min(best[label], seconds)
                spent += seconds
            rounds += 1
        for label in manifests:
            results[label][f"{name}_rounds"] = rounds
            if name == "sql":
                results[label]["sql_s"] = best[label]
            else:
                results[label][f"{name}_rows_s"] = rows[label] / best[label]
    return results


def child_reversion(annotations: int) -> dict[str, Any]:
    """Re-version a project after several kinds of change, with deltas; compare reads."""
    ids = list(range(annotations // PER_ITEM))
    count = len(ids)
    variants: dict[str, set[int] | None] = {
        "0%": set(),
        "1% clustered": set(ids[count // 2 : count // 2 + count // 100]),
        "1% scattered": set(ids[::100]),
        "10% scattered": set(ids[::10]),
        "one class renamed everywhere": None,
    }
    results: dict[str, Any] = {"annotations": annotations, "variants": {}}
    with tempfile.TemporaryDirectory() as folder:
        pages = Path(folder) / "pages"
        pages.mkdir()
        cache_pages(pages, ids)
        store = LocalStore(Path(folder) / "store")
        base, _ = write(store, cached_pages(pages, set()), None)
        results["base_bytes"] = base.data_bytes
        parted_store = LocalStore(Path(folder) / "partitioned")
        parted_base, _ = write(parted_store, cached_pages(pages, set()), None)
        cuts = [item_key(ids[count * k // PARTITIONS]) for k in range(1, PARTITIONS)]
        manifests = {}

        def source_of(edited: set[int] | None) -> Iterator[tuple[str, pa.RecordBatch]]:
            if edited is None:
                return renamed(cached_pages(pages, set()), "car", "automobile")
            return cached_pages(pages, edited)

        for name, edited in variants.items():
            manifest, seconds = write(store, source_of(edited), None, previous=base)
            manifests[name] = manifest
            entry = manifest.table("annotations")
            parted = write_partitioned(parted_store, source_of(edited), cuts, parted_base)
            assert parted.content_hash == manifest.content_hash
            results["variants"][name] = {
                "written": manifest.bytes_written,
                "share": manifest.bytes_written / base.data_bytes,
                "stored_as": "delta" if entry.has_delta else "whole",
                "delta_chunks": len(entry.delta) + len(entry.displaced),
                "seconds": seconds,
                "parted_share": parted.bytes_written / base.data_bytes,
                "parted_as": "delta" if parted.table("annotations").has_delta else "whole",
            }
        results["rss_writes_mb"] = peak_rss_mb()  # before the reads and SQL below
        results["reads"] = {}
        for name, edited in variants.items():
            if name == "0%":
                continue
            with_delta = manifests[name]
            rows = (
                cached_pages(pages, edited)
                if edited is not None
                else renamed(cached_pages(pages, set()), "car", "automobile")
            )
            compacted, _ = write(store, rows, None, compact=True)
            assert compacted.content_hash == with_delta.content_hash
            results["reads"][name] = timed_reads(
                store,
                # The whole version twice: how far two measurements of the same reads differ.
                {"as stored": with_delta, "compacted": compacted, "compacted again": compacted},
            )
        changed = manifests["1% scattered"]
        timings = {}
        for label, skip in (("diff from the deltas", True), ("full scan", False)):
            started = time.perf_counter()
            result = diff(store, base, changed, skip_identical_chunks=skip)
            timings[label] = {
                "seconds": time.perf_counter() - started,
                "chunks_read": result.chunks_read,
                "changed": result.tables["annotations"].changed,
            }
        results["diff"] = timings
    results["rss_mb"] = peak_rss_mb()
    return results


# --- the parent: runs the children and prints the tables -----------------------------------


def run_child(*args: object) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter, so its peak RSS is its own."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=lambda text: int(float(text)),
        default=[10_000, 100_000, 1_000_000],
        metavar="N",
        help="project sizes in annotations (default: 10000 100000 1000000; 1e6 takes minutes)",
    )
    parser.add_argument("--quick", action="store_true", help="same as --sizes 10000 100000")
    parser.add_argument("--tiny", action="store_true", help="same as --sizes 10000")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "write":
            result = child_write(int(rest[0]), Path(rest[1]))
        elif kind == "read":
            result = child_read(Path(rest[0]))
        elif kind == "query":
            result = child_query(Path(rest[0]), verify=rest[1] == "verified")
        else:
            result = child_reversion(int(rest[0]))
        print(json.dumps(result))
        return

    sizes: list[int] = sorted(set(args.sizes))
    if args.quick:
        sizes = [10_000, 100_000]
    if args.tiny:
        sizes = [10_000]
    reversion_sizes = sizes
    started = time.perf_counter()
    print(f"labelvault snapshot format — pyarrow {pa.__version__}, {PER_ITEM} figures per image\n")

    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary)
            w = run_child("write", size, folder)
            r = run_child("read", folder)
            verified = run_child("query", folder, "verified")
            in_place = run_child("query", folder, "in-place")
        rows.append(
            [
                f"{size:,}",
                f"{w['rows']:,}",
                f"{w['chunks']}",
                f"{w['write_rows_s']:,.0f}",
                f"{r['read_rows_s']:,.0f}",
                f"{verified['seconds']:.2f} / {in_place['seconds']:.2f}",
                f"{w['parquet_b']:.0f}",
                f"{w['json_b']:.0f}",
                f"{w['json_gz_b']:.0f}",
                f"{w['rss_imports_mb']:.0f}",
                f"{w['rss_mb']:.0f} / {r['rss_mb']:.0f} / "
                f"{verified['rss_mb']:.0f} / {in_place['rss_mb']:.0f}",
            ]
        )
    print("Write, read, query, size and memory (local folder store, default chunk size):\n")
    print_table(
        [
            "annotations",
            "rows (all tables)",
            "ann. chunks",
            "write rows/s",
            "read rows/s",
            "SQL s (verified / in place)",
            "B/ann Parquet",
            "B/ann JSON",
            "B/ann JSON gz",
            "RSS MB after imports",
            "peak RSS MB (write / read / SQL verified / SQL in place)",
        ],
        rows,
    )
    print(
        "\nEach measurement runs in a fresh process. Rates count rows of every table; write "
        "time excludes generating the rows. JSON = the same annotation rows as JSON lines."
    )

    for size in reversion_sizes:
        r = run_child("reversion", size)
        print(
            f"\nRe-versioning {size:,} annotations against the base with deltas "
            f"(a full version = {r['base_bytes'] / 1e6:.2f} MB of chunks; peak RSS of the "
            f"process: {r['rss_writes_mb']:.0f} MB after these writes, {r['rss_mb']:.0f} MB "
            "after the reads, SQL and diffs below):\n"
        )
        print_table(
            [
                "change",
                "bytes written",
                "share of a full version",
                "stored as",
                "write s",
                f"share, {PARTITIONS} partitions",
                f"stored as, {PARTITIONS} partitions",
            ],
            [
                [
                    name,
                    f"{v['written']:,}",
                    f"{v['share']:.1%}",
                    v["stored_as"],
                    f"{v['seconds']:.2f}",
                    f"{v['parted_share']:.1%}",
                    v["parted_as"],
                ]
                for name, v in r["variants"].items()
            ],
        )
        for name, reads in r["reads"].items():
            stored_as = r["variants"][name]["stored_as"]
            rounds = " / ".join(
                f"{reads['compacted'][f'{what}_rounds']:.0f}" for what in ("read", "sql", "restore")
            )
            print(
                f"\n{name} version, as stored ({stored_as}) vs written whole (compacted), "
                f"best of {rounds} rounds each (read / SQL / restore-read):\n"
            )
            print_table(
                ["version", "read ann. rows/s", "SQL s", "restore-read rows/s (all tables)"],
                [
                    [
                        label,
                        f"{d['read_rows_s']:,.0f}",
                        f"{d['sql_s']:.2f}",
                        f"{d['restore_rows_s']:,.0f}",
                    ]
                    for label, d in reads.items()
                ],
            )
            whole = reads["compacted"]
            for label, what, aside in (
                ("as stored", "slowdown as stored", ""),
                ("compacted again", "noise", " (the same whole version measured again)"),
            ):
                other = reads[label]
                print(
                    f"\n{what}: read {whole['read_rows_s'] / other['read_rows_s']:.2f}x, "
                    f"SQL {other['sql_s'] / whole['sql_s']:.2f}x, restore-read "
                    f"{whole['restore_rows_s'] / other['restore_rows_s']:.2f}x{aside}"
                )
        print(f"\nDiff of the 1% scattered change ({size:,} annotations):\n")
        print_table(
            ["method", "seconds", "chunks read", "changed annotations"],
            [
                [label, f"{d['seconds']:.2f}", f"{d['chunks_read']}", f"{d['changed']:,}"]
                for label, d in r["diff"].items()
            ],
        )
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
