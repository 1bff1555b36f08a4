"""The results store: one tidy row per measurement, one directory per run.

Layout::

    data/runs/<study>/<run_id>/results.parquet   the rows (pandas + pyarrow)
    data/runs/<study>/<run_id>/meta.json         schema version, params, git, machine

Every row has the ``SCHEMA_COLUMNS`` (strategy columns are None where they
do not apply) and may carry free extra columns (``target``, ``param``,
``engine``, ``loop_mode``...). ``run_id`` defaults to a UTC timestamp plus a
short random suffix, so run directories sort by time and never collide.
``load_runs`` reads every run of a study (or of all studies) into one frame,
with the run's metadata (timestamp, git commit...) as columns, so results from
different days can be compared -- and refuses a run written by a newer schema
instead of misreading it.

pandas is imported inside the functions that need it: the server process and
``h3lab.bench``'s light modules never pay for it.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h3lab.bench.machine import git_info, machine_info
from h3lab.registry import option_columns, strategy_columns, strategy_values

if TYPE_CHECKING:
    import pandas as pd

    from h3lab.config import Config

SCHEMA_VERSION = 1

# The strategy columns come from the family table (h3lab.registry.FAMILIES):
# router, cache_policy, cache_size, pool_policy, pool_size, memory_strategy,
# middleware, json. Older runs without a column read it as None (load_run).
STRATEGY_COLUMNS: tuple[str, ...] = strategy_columns()

SCHEMA_COLUMNS: tuple[str, ...] = (
    "study",
    "run_id",
    *STRATEGY_COLUMNS,
    "workload",
    "metric",
    "value",
    "unit",
    "repetition",
    "t",
)

_INT_COLUMNS = (*option_columns(), "repetition")
_STR_COLUMNS = (
    "study",
    "run_id",
    *(c for c in STRATEGY_COLUMNS if c not in option_columns()),
    "workload",
    "metric",
    "unit",
)

# Metadata fields copied onto every row by load_runs.
META_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "git_commit",
    "git_dirty",
    "h3lab_version",
    "hostname",
    "cpu_model",
)

RESULTS_FILE = "results.parquet"
META_FILE = "meta.json"
DEFAULT_ROOT = "data/runs"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def new_run_id() -> str:
    """``20250101T120000123Z-1a2b3c``: UTC to the millisecond, then 6 random hex digits."""
    now = datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:6]}"


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{kind} must be letters, digits, '.', '_' or '-' (a directory name), got {value!r}"
        )
    return value


def config_columns(config: Config) -> dict[str, Any]:
    """The strategy columns of a ``Config`` (plus ``preset``, its preset name)."""
    return {**strategy_values(config), "preset": config.preset_name}


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return repr(value)


class RunWriter:
    """Collects rows of one run and writes ``results.parquet`` + ``meta.json``.

    ``RunWriter("router", params={...}).add_rows(rows)``, then ``write()``
    (callable again after more rows: it rewrites both files).
    """

    def __init__(
        self,
        study: str,
        run_id: str | None = None,
        root: str | Path = DEFAULT_ROOT,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.study = _check_name("study", study)
        self.run_id = _check_name("run_id", run_id) if run_id is not None else new_run_id()
        self.root = Path(root)
        self.params = dict(params or {})
        self.rows: list[dict[str, Any]] = []
        self.started = datetime.now(UTC).isoformat()

    @property
    def path(self) -> Path:
        return self.root / self.study / self.run_id

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> RunWriter:
        """Append rows; each needs ``metric`` and a numeric ``value``. Missing ``t`` = now."""
        now = time.time()
        for row in rows:
            if "metric" not in row or "value" not in row:
                raise ValueError(f"a result row needs 'metric' and 'value', got keys {sorted(row)}")
            value = row["value"]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"row value must be a number, got {value!r} for metric {row['metric']!r}"
                )
            record: dict[str, Any] = {column: None for column in SCHEMA_COLUMNS}
            record.update(row)
            record["study"] = self.study
            record["run_id"] = self.run_id
            if record["t"] is None:
                record["t"] = now
            self.rows.append(record)
        return self

    def add_row(self, **row: Any) -> RunWriter:
        return self.add_rows([row])

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame: schema columns first, then extras, typed for Parquet."""
        import pandas as pd

        columns = list(SCHEMA_COLUMNS)
        for row in self.rows:
            columns.extend(key for key in row if key not in columns)
        frame = pd.DataFrame.from_records(self.rows, columns=columns)
        return _typed(frame)

    def meta(self) -> dict[str, Any]:
        info = machine_info()
        git = git_info()
        return {
            "schema_version": SCHEMA_VERSION,
            "study": self.study,
            "run_id": self.run_id,
            "params": self.params,
            "started": self.started,
            "timestamp": datetime.now(UTC).isoformat(),
            "n_rows": len(self.rows),
            "git_commit": git["commit"],
            "git_dirty": git["dirty"],
            "git_branch": git["branch"],
            "h3lab_version": info["versions"].get("h3lab") or _h3lab_version(),
            "python": info["python"],
            "uvloop_version": info["versions"].get("uvloop"),
            "httptools_version": info["versions"].get("httptools"),
            "cpu_model": info["cpu_model"],
            "cores": info["cores"],
            "cpu_affinity": info["cpu_affinity"],
            "hostname": info["hostname"],
            "platform": info["platform"],
            "machine": info,
        }

    def write(self) -> Path:
        """Write both files (Parquet first, atomically renamed); returns the run directory."""
        directory = self.path
        directory.mkdir(parents=True, exist_ok=True)
        frame = self.frame()
        tmp = directory / f".{RESULTS_FILE}.{os.getpid()}.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(directory / RESULTS_FILE)
        meta_tmp = directory / f".{META_FILE}.{os.getpid()}.tmp"
        meta_tmp.write_text(json.dumps(self.meta(), indent=2, default=_json_default) + "\n")
        meta_tmp.replace(directory / META_FILE)
        return directory


def _h3lab_version() -> str:
    import h3lab

    return h3lab.__version__


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: fix the schema columns, reconcile extras."""
    import pandas as pd

    frame["value"] = frame["value"].astype("float64")
    frame["t"] = frame["t"].astype("float64")
    for column in _INT_COLUMNS:
        frame[column] = pd.array([_to_int(v) for v in frame[column]], dtype="Int64")
    for column in _STR_COLUMNS:
        frame[column] = (
            frame[column].map(lambda v: None if _missing(v) else str(v)).astype("object")
        )
    for column in frame.columns:
        if column not in SCHEMA_COLUMNS and frame[column].dtype == object:
            frame[column] = _reconcile(frame[column])
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _to_int(value: Any) -> int | None:
    if _missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"expected an integer, got {value!r}")


def _reconcile(series: pd.Series) -> pd.Series:
    """An extra column of mixed Python types: numbers stay numbers, anything else becomes text."""
    kinds = {type(v) for v in series if not _missing(v)}
    if not kinds or (len(kinds) == 1 and kinds <= {str, bool, int, float}):
        return series
    if kinds <= {int, float}:
        return series.astype("float64")

    def as_text(value: Any) -> Any:
        if _missing(value):
            return None
        if isinstance(value, list | dict | tuple):
            return json.dumps(value, default=_json_default)
        return str(value)

    return series.map(as_text).astype("object")


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``meta.json``, after checking this h3lab can read its schema."""
    path = Path(run_dir) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read run metadata ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path}: no integer schema_version: not an h3lab results run")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"{path}: written with results schema_version {version}, newer than this h3lab "
            f"reads ({SCHEMA_VERSION}); upgrade h3lab to load it"
        )
    return meta


def load_run(run_dir: str | Path) -> pd.DataFrame:
    """One run's rows with its metadata columns (``META_COLUMNS``)."""
    import pandas as pd

    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    frame = pd.read_parquet(run_dir / RESULTS_FILE)
    for column in SCHEMA_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    # Rows always carry their run's identity, even if a writer left them out.
    frame["study"] = frame["study"].fillna(meta.get("study"))
    frame["run_id"] = frame["run_id"].fillna(meta.get("run_id"))
    for column in META_COLUMNS:
        frame[column] = meta.get(column)
    return frame


def run_dirs(study: str | None = None, root: str | Path = DEFAULT_ROOT) -> list[Path]:
    """Run directories (those holding a meta.json), oldest first."""
    root = Path(root)
    pattern = (
        f"{_check_name('study', study)}/*/{META_FILE}" if study is not None else f"*/*/{META_FILE}"
    )
    dirs = [meta.parent for meta in root.glob(pattern)]

    def order(path: Path) -> tuple[str, str]:
        try:
            stamp = str(json.loads((path / META_FILE).read_text()).get("timestamp") or "")
        except (OSError, ValueError):
            stamp = ""
        return stamp, path.name

    return sorted(dirs, key=order)


def load_runs(study: str | None = None, root: str | Path = DEFAULT_ROOT) -> pd.DataFrame:
    """Every run of ``study`` (all studies when None) as one frame, oldest run first.

    A run directory without ``results.parquet`` (a crashed run) is skipped
    with a warning; a run with a newer schema raises ``ValueError``.
    """
    import pandas as pd

    frames = []
    for run_dir in run_dirs(study, root):
        read_meta(run_dir)  # the schema check comes before anything else
        if not (run_dir / RESULTS_FILE).is_file():
            warnings.warn(f"{run_dir}: no {RESULTS_FILE}, skipped", stacklevel=2)
            continue
        frames.append(load_run(run_dir))
    if not frames:
        return pd.DataFrame(columns=[*SCHEMA_COLUMNS, *META_COLUMNS])
    return pd.concat(frames, ignore_index=True, sort=False)


def latest_run(study: str, root: str | Path = DEFAULT_ROOT) -> Path | None:
    """The directory of the newest run of ``study`` (None when there is none)."""
    dirs = run_dirs(study, root)
    return dirs[-1] if dirs else None
