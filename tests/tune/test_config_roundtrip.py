"""What ``tune`` writes is exactly what ``Config.load`` and ``h3lab serve --config`` read."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from h3lab.bench.server import ServerProcess
from h3lab.cli import build_parser, config_from_args
from h3lab.config import Config
from h3lab.tune.report import write_config
from h3lab.tune.space import SearchSpace


def _sampled(n: int) -> list[Config]:
    space = SearchSpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.sample(trial))
        study.tell(trial, 1.0)
    return out


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_written_configs_load_exactly(tmp_path: Path, suffix: str) -> None:
    comment = (
        ["h3lab tune: study zipf-throughput", "verdict: two\nlines"] if suffix == ".toml" else []
    )
    for i, config in enumerate(
        [*_sampled(25), Config.preset("performance"), Config.preset("baseline")]
    ):
        path = write_config(config, tmp_path / f"c{i}{suffix}", comment)
        loaded = Config.load(path)
        assert loaded == config and loaded.label == config.label  # the preset name included
        args = build_parser().parse_args(["serve", "tests.apps.basic:app", "--config", str(path)])
        assert config_from_args(args) == loaded


def test_json_refuses_a_comment(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="comments"):
        write_config(Config(), tmp_path / "c.json", ["no"])


def test_h3lab_serve_runs_exactly_the_written_config(tmp_path: Path) -> None:
    config = next(c for c in _sampled(40) if c.cache.policy != "none" and c.pool.policy != "none")
    path = write_config(config, tmp_path / "best.toml", ["h3lab tune: a comment line"])
    with ServerProcess(preset=None, config_file=path, sample_interval=None) as srv:
        stats = srv.fetch_stats()
    assert stats is not None
    served = dict(stats["config"])
    assert served.pop("server.stats_path") == "/__stats"  # ServerProcess's own --set
    expected = config.flat()
    expected.pop("server.stats_path")
    assert served == expected
