"""`bazkhord tag-batch`: tag a whole archive of comments into Parquet parts, on this machine or on a Ray cluster.

Both engines cut every input file into parts of `part_rows` rows, in order, and write one Parquet file per part
(`parts/<input>-<part>.parquet`) with the same columns, row for row:

    source, row          where the comment came from (file, row number: line, CSV row, Parquet row)
    id                   the row's id column, when it has one
    text                 the comment with its personal data masked ([PHONE], [CARD], ...)
    sentiment            the label, and `probabilities` (JSON object) beside it
    aspects              JSON list: aspect, confidence, polarity, polarity_confidence, evidence [{text, start, end}]
    model_name, model_version
    with --statements, for `bazkhord report --tagged` (theme reports over the archive), also:
    created_at, rating, nps, channel, product, segment, fields (JSON)   the row's metadata, as `report` reads it
    statements           JSON list: every statement of the masked text with start, end, normalised text,
                         sentiment, negative probability, aspects with polarity, opinion (see model.themes.analysis)

Rows without usable text go to `rejects/<input>-<part>.jsonl` (file, row, field, reason), never silently away.
A part is written under a temporary name and renamed when complete, so a run that stops (Ctrl-C, a lost node)
leaves only whole parts, and running the same command again skips them. `_job.json` records the model and the
inputs; another model version or other inputs in the same folder are refused (use another --out, or --overwrite).

`local` streams rows through one tagger in this process (memory bounded by one part). `ray` uses Ray Data:
the driver cuts the inputs into staged Parquet parts (row numbers and rejects known before any tagging), then
`read_parquet` -> `map_batches` with a callable class that loads the model folder once per actor (a pool sized
to the cluster's CPUs, or its GPUs for an encoder model) -> `write_parquet`, a group of parts per round so a
stopped run keeps what it finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bazkhord.data.errors import ConfigError, DataError
from bazkhord.data.pii import find_pii, mask_span
from bazkhord.data.progress import QUIET, Progress
from bazkhord.data.readers import FORMATS, ColumnMap, RowError, comment_text, detect_format, iter_rows, record_of
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.base import Tag, mask_evidence
from bazkhord.model.tagger import BaseTagger

if TYPE_CHECKING:
    from bazkhord.model.themes.sampling import Mapper
    from bazkhord.model.themes.statements import TaggedComments

log = logging.getLogger(__name__)

JOB_FILE = "_job.json"
PARTS_DIR = "parts"
REJECTS_DIR = "rejects"
STAGED_DIR = "_staged"
COLUMNS = ("source", "row", "id", "text", "sentiment", "probabilities", "aspects", "model_name", "model_version")
# With --statements, for theme reports (`bazkhord report --tagged`): the row's metadata and its tagged statements.
META_COLUMNS = ("created_at", "rating", "nps", "channel", "product", "segment", "fields")
STATEMENTS = "statements"
THEME_COLUMNS = (*META_COLUMNS, STATEMENTS)
SUFFIXES = {".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".parquet"}



@dataclass
class BatchResult:
    out: Path
    engine: str
    rows: int = 0  # tagged rows written in this run
    skipped_rows: int = 0  # rows of parts an earlier run finished
    rejected: int = 0
    parts_written: int = 0
    parts_skipped: int = 0
    seconds: float = 0.0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


def expand_inputs(paths: Sequence[str | Path]) -> list[str]:
    """Files to read, in a stable order: a file as given; a folder's files of a known format (recursively); a
    `datasets` folder (saved with save_to_disk) as one input."""
    found: list[str] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        if path.is_file():
            detect_format(str(path))  # a clear error for an unknown suffix
            found.append(str(path))
        elif (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            found.append(str(path))
        else:
            files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                           and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts))
            if not files:
                raise DataError(f"{path}: no {', '.join(FORMATS)} files in this folder")
            found.extend(files)
    return found


def part_name(input_index: int, part_index: int) -> str:
    return f"{input_index:05d}-{part_index:05d}"


def tagged_columns(sources: Sequence[str], rows: Sequence[int], ids: Sequence[str | None], texts: Sequence[str],
                   tags: Sequence[Tag], model_name: str, model_version: str) -> dict[str, list[Any]]:
    """The output columns for tagged comments: one function for both engines, so their rows are identical."""
    out: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for source, row, ident, text, tag in zip(sources, rows, ids, texts, tags, strict=True):
        spans = find_pii(text)  # once, for the text and its evidence alike
        out["source"].append(source)
        out["row"].append(int(row))
        out["id"].append(ident)
        out["text"].append(mask_span(text, 0, len(text), spans) if spans else text)
        out["sentiment"].append(tag.sentiment)
        out["probabilities"].append(json.dumps(tag.probabilities, sort_keys=True))
        out["aspects"].append(json.dumps([
            {"aspect": a.aspect, "confidence": a.confidence, "polarity": a.polarity,
             "polarity_confidence": a.polarity_confidence,
             "evidence": [{"text": e.text, "start": e.start, "end": e.end} for e in a.evidence]}
            for a in mask_evidence(tag, text, spans).aspects], ensure_ascii=False))
        out["model_name"].append(model_name)
        out["model_version"].append(model_version)
    return out


def record_meta(record: FeedbackRecord) -> dict[str, Any]:
    """The metadata columns of a record: what a theme report needs besides the text (trends, outcomes, breakdowns)."""
    return {"created_at": record.created_at.isoformat() if record.created_at is not None else None,
            "rating": record.rating, "nps": record.nps, "channel": record.channel, "product": record.product,
            "segment": record.segment,
            "fields": json.dumps({k: list(v) for k, v in record.fields.items()}, ensure_ascii=False)}


def theme_columns(tagger: BaseTagger, masked: Sequence[str], metas: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """The --statements columns: metadata, and every statement of the masked text tagged (offsets into it)."""
    from bazkhord.model.themes.statements import statements_of

    out: dict[str, list[Any]] = {name: [m[name] for m in metas] for name in META_COLUMNS}
    rows: list[list[dict[str, object]]] = [[] for _ in masked]
    for statement in statements_of(tagger, masked):
        rows[statement.comment].append(statement.to_row())
    out[STATEMENTS] = [json.dumps(r, ensure_ascii=False) for r in rows]
    return out


def meta_fields() -> list[tuple[str, Any]]:
    import pyarrow as pa

    return [("created_at", pa.string()), ("rating", pa.float64()), ("nps", pa.int64()), ("channel", pa.string()),
            ("product", pa.string()), ("segment", pa.string()), ("fields", pa.string())]


def arrow_schema(statements: bool) -> Any:
    import pyarrow as pa

    fields = [("source", pa.string()), ("row", pa.int64()), ("id", pa.string()), ("text", pa.string()),
              ("sentiment", pa.string()), ("probabilities", pa.string()), ("aspects", pa.string()),
              ("model_name", pa.string()), ("model_version", pa.string())]
    if statements:
        fields += [*meta_fields(), (STATEMENTS, pa.string())]
    return pa.schema(fields)


def arrow_table(columns: dict[str, list[Any]]) -> Any:
    import pyarrow as pa

    schema = arrow_schema(STATEMENTS in columns)
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)


@dataclass
class Part:
    """Rows of one input file, in order: what is tagged (source, row, id, text) and what was rejected."""

    name: str
    source: str
    rows: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metas: list[dict[str, Any]] = field(default_factory=list)  # with --statements: each row's metadata columns
    rejects: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False  # an earlier run wrote it: rows counted, texts not kept

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.rejects)


def cut_parts(inputs: Sequence[str], columns: ColumnMap, part_rows: int, skip: Callable[[str], bool],
              metadata: bool = False) -> Iterator[Part]:
    """Every input's rows in parts of `part_rows`; a part `skip` names (finished earlier) comes back empty but for
    its name and size, its texts never held in memory. With `metadata`, each row's dates, ratings and fields too
    (a row whose metadata cannot be read is rejected, as `bazkhord report` rejects it)."""
    for input_index, source in enumerate(inputs):
        part_index = 0
        part = Part(part_name(input_index, part_index), source)
        part.finished = skip(part.name)
        for number, raw in iter_rows(source):
            if part.finished:
                part.rows.append(number)  # counted, not kept
            else:
                try:
                    ident, text = comment_text(raw, columns)
                    if metadata:
                        part.metas.append(record_meta(record_of(raw, columns, f"{source}:{number}")))
                except RowError as error:
                    part.rejects.append({"file": source, "row": number, "field": error.field_name,
                                         "reason": error.reason})
                else:
                    part.rows.append(number)
                    part.ids.append(ident)
                    part.texts.append(text)
            if part.size == part_rows:
                yield part
                part_index += 1
                part = Part(part_name(input_index, part_index), source)
                part.finished = skip(part.name)
        if part.size:
            yield part


class BatchJob:
    """One tag-batch run: inputs, output folder, model; `run()` with the engine's `tag_parts`."""

    def __init__(self, inputs: Sequence[str | Path], out: Path, model: str | None, models_dir: Path,
                 columns: ColumnMap | None = None, part_rows: int = 50_000, batch_size: int = 512,
                 overwrite: bool = False, statements: bool = False) -> None:
        from bazkhord.model.folder import resolve

        if part_rows < 1 or batch_size < 1:
            raise ConfigError("part_rows and batch_size must be at least 1")
        self.inputs = expand_inputs(inputs)
        self.out = Path(out)
        self.folder = resolve(model, models_dir)
        manifest = json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))
        self.model_name, self.model_version = str(manifest["name"]), str(manifest["version"])
        self.columns = columns or ColumnMap()
        self.part_rows = part_rows
        self.batch_size = batch_size
        self.statements = statements  # also each comment's metadata and tagged statements, for theme reports
        self._claim(overwrite)

    def _claim(self, overwrite: bool) -> None:
        """Write `_job.json`, or check that the folder holds this job's parts (so resuming cannot mix models)."""
        job = {"model": {"name": self.model_name, "version": self.model_version, "folder": str(self.folder)},
               "inputs": [str(Path(p).resolve()) for p in self.inputs], "part_rows": self.part_rows,
               # as JSON reads it back (tuples as lists), so a resumed run compares like with like
               "columns": json.loads(json.dumps(dataclasses.asdict(self.columns))), "statements": self.statements}
        path = self.out / JOB_FILE
        if path.exists() and not overwrite:
            earlier = json.loads(path.read_text(encoding="utf-8"))
            same = {k: earlier.get(k) for k in ("inputs", "part_rows", "columns", "statements")} == \
                   {k: job[k] for k in ("inputs", "part_rows", "columns", "statements")} and \
                   {k: earlier["model"].get(k) for k in ("name", "version")} == \
                   {"name": self.model_name, "version": self.model_version}
            if not same:
                raise ConfigError(f"{self.out} holds the parts of another job ({earlier['model']['name']} "
                                  f"{earlier['model']['version']}, {len(earlier['inputs'])} input(s)); use another "
                                  "--out, or --overwrite to start it again")
        elif path.exists():
            for name in (PARTS_DIR, REJECTS_DIR, STAGED_DIR):
                shutil.rmtree(self.out / name, ignore_errors=True)
        for name in (PARTS_DIR, REJECTS_DIR):
            (self.out / name).mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(job, ensure_ascii=False, indent=2), encoding="utf-8")

    @property
    def columns_out(self) -> tuple[str, ...]:
        return (*COLUMNS, *THEME_COLUMNS) if self.statements else COLUMNS

    def done(self, name: str) -> bool:
        return (self.out / PARTS_DIR / f"{name}.parquet").exists() and \
               (self.out / REJECTS_DIR / f"{name}.jsonl").exists()

    def write_rejects(self, part: Part, folder: Path) -> None:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part.rejects)
        _atomic_write(folder / f"{part.name}.jsonl", lines.encode("utf-8"))

    def write_part(self, name: str, table: Any) -> None:
        import pyarrow.parquet as pq

        final = self.out / PARTS_DIR / f"{name}.parquet"
        staging = final.with_suffix(".parquet.tmp")
        pq.write_table(table, staging)
        staging.replace(final)

    def summarise(self, result: BatchResult) -> BatchResult:
        reasons: dict[str, int] = {}
        for path in (self.out / REJECTS_DIR).glob("*.jsonl"):
            for line in path.read_text(encoding="utf-8").splitlines():
                reason = json.loads(line)["reason"]
                reasons[reason] = reasons.get(reason, 0) + 1
        result.rejected = sum(reasons.values())
        result.rejects_by_reason = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
        # Marks the job whole: a theme report over it (`report --tagged`) refuses a folder a run left half done.
        path = self.out / JOB_FILE
        job = json.loads(path.read_text(encoding="utf-8"))
        job["finished"] = {"rows": result.rows + result.skipped_rows, "rejected": result.rejected,
                           "parts": result.parts_written + result.parts_skipped}
        _atomic_write(path, json.dumps(job, ensure_ascii=False, indent=2).encode("utf-8"))
        return result


def parts_to_tag(job: BatchJob, result: BatchResult) -> Iterator[tuple[Part, int]]:
    """The parts an earlier run did not finish, with the rows read so far; finished ones are counted in `result`."""
    seen = 0
    for part in cut_parts(job.inputs, job.columns, job.part_rows, job.done, job.statements):
        seen += part.size
        if part.finished:
            result.parts_skipped += 1
            result.skipped_rows += part.size
        else:
            yield part, seen


def run_local(job: BatchJob, progress: Progress = QUIET) -> BatchResult:
    """Stream every part through one tagger in this process."""
    from bazkhord.model.folder import load_model

    started = time.perf_counter()
    result = BatchResult(job.out, "local")
    tagger = load_model(str(job.folder)).tagger
    for part, seen in parts_to_tag(job, result):
        tags: list[Tag] = []
        for start in range(0, len(part.texts), job.batch_size):
            tags += tagger.tag(part.texts[start : start + job.batch_size])
        columns = tagged_columns([part.source] * len(part.texts), part.rows, part.ids, part.texts, tags,
                                 job.model_name, job.model_version)
        if job.statements:
            columns.update(theme_columns(tagger, columns["text"], part.metas))
        job.write_part(part.name, arrow_table(columns))
        job.write_rejects(part, job.out / REJECTS_DIR)
        result.parts_written += 1
        result.rows += len(part.texts)
        progress.count(seen, None, "rows")
    result.seconds = time.perf_counter() - started
    return job.summarise(result)


def read_tagged(out: Path, progress: Progress = QUIET) -> tuple[dict[str, Any], TaggedComments]:
    """A finished `tag-batch --statements` folder as the theme report's input, part by part: each row's metadata,
    its sentiment, and those of its statements that may be complaints (the others only counted), so the driver
    holds no more than the report needs."""
    import pyarrow.parquet as pq

    from bazkhord.model.themes.statements import Statement, TaggedComments

    path = Path(out) / JOB_FILE
    if not path.exists():
        raise DataError(f"{out}: no {JOB_FILE}; give the --out folder of a `bazkhord tag-batch --statements` run")
    job = json.loads(path.read_text(encoding="utf-8"))
    if not job.get("statements"):
        raise DataError(f"{out}: tagged without --statements, so it holds no statements to find themes in; run "
                        "`bazkhord tag-batch` again with --statements (into another --out)")
    if "finished" not in job:
        raise DataError(f"{out}: the tag-batch run has not finished (a stopped run keeps its whole parts); run the "
                        "same tag-batch command again to finish it, then the report")
    tagged = TaggedComments([], [], [], 0, 0)
    parts = sorted((Path(out) / PARTS_DIR).glob("*.parquet"))
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=10_000, columns=["source", "row", "id", "text",
                                                                                   "sentiment", *THEME_COLUMNS]):
            for row in batch.to_pylist():
                comment = len(tagged.records)
                fields = json.loads(row["fields"])
                tagged.records.append(FeedbackRecord(
                    text="",  # the statements carry the text the report quotes
                    id=row["id"], channel=row["channel"],
                    created_at=datetime.fromisoformat(row["created_at"]) if row["created_at"] else None,
                    rating=row["rating"], nps=row["nps"], product=row["product"], segment=row["segment"],
                    fields={k: tuple(v) for k, v in fields.items()}, origin=f"{row['source']}:{row['row']}"))
                statements = json.loads(row[STATEMENTS])
                tagged.statement_count += len(statements)
                tagged.opinion_free += sum(1 for st in statements if not st["opinion"])
                # as `ThemeAnalyzer.comment_sentiment` reads it: a one-statement comment by its statement's tag
                tagged.sentiment.append(statements[0]["sentiment"] if len(statements) == 1 else row["sentiment"])
                for st in statements:
                    statement = Statement.from_row(comment, row["text"], st)
                    if statement.may_complain:
                        tagged.statements.append(statement)
            progress.count(len(tagged.records), job["finished"]["rows"] - job["finished"]["rejected"], "comments read")
    return job, tagged


def ray_mapper(ray: Any) -> Mapper:
    """The theme report's nearest-cluster assignment as Ray tasks, one per chunk of statements, in order."""
    from bazkhord.model.themes.sampling import ASSIGN_CHUNK

    task = ray.remote(num_cpus=1)(_assign_chunk)

    def mapper(assign: Callable[[list[str]], tuple[Any, Any]], texts: list[str]) -> tuple[Any, Any]:
        import numpy as np

        shared = ray.put(assign)
        results = ray.get([task.remote(shared, texts[i : i + ASSIGN_CHUNK]) for i in range(0, len(texts), ASSIGN_CHUNK)])
        if not results:
            return np.zeros(0, dtype=int), np.zeros(0)
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])

    return mapper


def _assign_chunk(assign: Callable[[list[str]], tuple[Any, Any]], texts: list[str]) -> tuple[Any, Any]:
    return assign(texts)


ENCODER_KINDS = ("transformer-tagger", "ensemble-tagger")


def actor_plan(resources: dict[str, float], kind: str, actors: int | None, local_cpus: int | None) -> tuple[int, int]:
    """(actors, GPUs per actor). An encoder model gets one actor per GPU where the cluster has GPUs; otherwise one
    actor per CPU: of a local instance (`local_cpus`: it was given one more for Ray Data's own tasks), or of a
    cluster less one, left to those tasks. `actors` overrides the count."""
    gpus = int(resources.get("GPU", 0))
    if kind in ENCODER_KINDS and gpus:
        return actors or gpus, 1
    return actors or local_cpus or max(1, int(resources.get("CPU", 1)) - 1), 0


class TagActor:
    """Ray Data's callable class: loads the model folder once per actor, then tags batch after batch (an encoder
    model on the actor's GPU, where it was given one)."""

    def __init__(self, folder: str, model_name: str, model_version: str, statements: bool = False,
                 gpu: bool = False) -> None:
        from bazkhord.model.folder import load_model

        self.tagger = load_model(folder).tagger
        if gpu and hasattr(self.tagger, "to"):
            self.tagger.to("cuda")
        self.model_name, self.model_version = model_name, model_version
        self.statements = statements

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        texts = [str(t) for t in batch["text"]]
        ids = [_optional(i) for i in batch["id"]]
        columns = tagged_columns([str(s) for s in batch["source"]], [int(r) for r in batch["row"]], ids, texts,
                                 self.tagger.tag(texts), self.model_name, self.model_version)
        if self.statements:
            metas = [{name: _optional(batch[name][i]) for name in META_COLUMNS} for i in range(len(texts))]
            columns.update(theme_columns(self.tagger, columns["text"], metas))
        return {**columns, "part": [str(p) for p in batch["part"]]}


def run_ray(job: BatchJob, address: str | None = None, cpus: int | None = None, actors: int | None = None,
            progress: Progress = QUIET) -> BatchResult:
    """Stage the parts on the driver, then tag them with Ray Data, a group of parts per round."""
    ray = import_ray()
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    result = BatchResult(job.out, "ray")
    with ray_session(address, cpus) as started_here:
        staged_dir = job.out / STAGED_DIR
        staged_dir.mkdir(parents=True, exist_ok=True)
        pending: list[tuple[str, Path, int]] = []
        sizes: dict[str, int] = {}  # rows of each pending part, rejected ones included: the progress counts them too
        output = arrow_schema(job.statements)
        for part, _ in parts_to_tag(job, result):
            sizes[part.name] = part.size
            staged = staged_dir / f"{part.name}.parquet"
            columns: dict[str, list[Any]] = {"source": [part.source] * len(part.rows), "row": part.rows, "id": part.ids,
                                             "text": part.texts, "part": [part.name] * len(part.rows)}
            if job.statements:
                columns.update({name: [m[name] for m in part.metas] for name in META_COLUMNS})
            # the output's types for the columns the actors read; the part each row belongs to is the one added
            schema = pa.schema([output.field(name) if name != "part" else ("part", pa.string()) for name in columns])
            pq.write_table(pa.table(columns, schema=schema), staged)
            pending.append((part.name, staged, len(part.texts)))
            job.write_rejects(part, staged_dir)  # final with the part, so `done` never sees half a part

        kind = json.loads((job.folder / "manifest.json").read_text(encoding="utf-8"))["kind"]
        local = (cpus or os.cpu_count() or 1) if started_here and not address else None
        pool, gpus = actor_plan(ray.cluster_resources(), kind, actors, local)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours is the one display
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        done_rows = result.skipped_rows
        group = max(1, 2 * pool)
        for start in range(0, len(pending), group):
            chunk = pending[start : start + group]
            todo = [(name, staged, n) for name, staged, n in chunk if n]
            if todo:
                # Several blocks per part, so every actor has batches to take (a part is one file, one block).
                dataset = ray.data.read_parquet([str(staged) for _, staged, _ in todo],
                                                override_num_blocks=max(len(todo), 2 * pool))
                tagged = dataset.map_batches(TagActor, fn_constructor_args=(str(job.folder), job.model_name,
                                                                            job.model_version, job.statements,
                                                                            bool(gpus)),
                                             batch_size=job.batch_size, batch_format="numpy", num_cpus=1,
                                             num_gpus=gpus, compute=ray.data.ActorPoolStrategy(size=pool))
                round_dir = job.out / f"_round-{start:06d}"
                shutil.rmtree(round_dir, ignore_errors=True)
                tagged.write_parquet(str(round_dir), partition_cols=["part"])
                schema = arrow_schema(job.statements)
                for name, _, _ in todo:
                    table = pq.read_table(round_dir / f"part={name}").sort_by("row")
                    job.write_part(name, table.select(schema.names).cast(schema))
                shutil.rmtree(round_dir, ignore_errors=True)
            for name, staged, n in chunk:
                if not n:
                    job.write_part(name, arrow_table({c: [] for c in job.columns_out}))
                (staged_dir / f"{name}.jsonl").replace(job.out / REJECTS_DIR / f"{name}.jsonl")
                staged.unlink(missing_ok=True)
                result.parts_written += 1
                result.rows += n
            done_rows += sum(sizes[name] for name, _, _ in chunk)
            progress.count(done_rows, result.skipped_rows + sum(sizes.values()), "rows")
    shutil.rmtree(staged_dir, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return job.summarise(result)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'bazkhord[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, cpus: int | None) -> Iterator[bool]:
    """Ray, joined at `address` or started here (and stopped at the end); yields whether it started here. A
    local instance gets one logical CPU more than it has actors: Ray Data's small tasks (listing and reading the
    staged files, writing parts) need a CPU slot, and an actor pool holding every slot starves them (measured: 2
    actors on 2 CPUs never started reading). On a cluster, one CPU is left to them."""
    ray = import_ray()
    if address and address != "auto" and not ray.is_initialized():
        _reachable(address)  # before any work: Ray itself retries an unreachable address for minutes
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, num_cpus=None if address else (cpus or os.cpu_count() or 1) + 1,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as error:  # Ray raises many types for an unreachable or refusing cluster
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise ConfigError(f"cannot start or join {where}: {type(error).__name__}: {error}") from None
    try:
        yield started_here
    finally:
        if started_here:
            ray.shutdown()


def _optional(value: Any) -> Any:
    """A value from a Ray batch as Python: None for missing (None or pandas' NaN), numpy scalars unwrapped."""
    if value is None or value != value:
        return None
    return value.item() if hasattr(value, "item") else value


def _atomic_write(path: Path, data: bytes) -> None:
    staging = path.with_suffix(path.suffix + ".tmp")
    staging.write_bytes(data)
    staging.replace(path)


def _reachable(address: str) -> None:
    """A one-line error at once when nothing listens at a Ray cluster's `host:port` (or `ray://host:port`)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected HOST:PORT, as `ray start --head` prints it")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise ConfigError(f"no Ray cluster answers at {address} ({error}); start one with `ray start --head` there, "
                          "or leave out --address to start a local one") from None
