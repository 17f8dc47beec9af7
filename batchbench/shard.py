"""One shard of a sweep spread over machines by a scheduler (Slurm job arrays, Kubernetes
Indexed Jobs): which shard this process is (`--shard I/N`, or `--shard auto` from the
scheduler's variables) and which of the planned points it runs. Pure: no processes, no files.

The partition is the same in every shard because it is a function of the plan alone (the
groups in plan order and the batch sizes), never of hashes, hosts or time. The units are dealt
out like cards, one to each shard in turn: whole groups when there are at least N of them (so
"skip the larger sizes after an OOM" and find-max's search see the whole ladder), otherwise
each group's batch sizes (smallest first, the smallest always to shard 1)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchbench.errors import ConfigError
from batchbench.plan import Group

_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int          # 1-based
    count: int
    source: str = ""    # where it came from, in words ("--shard 2/3", "SLURM_ARRAY_TASK_ID=5 ...")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def to_record(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "source": self.source}

    @classmethod
    def from_record(cls, record: Any) -> Shard | None:
        if not isinstance(record, dict):
            return None
        index, count = record.get("index"), record.get("count")
        if not (type(index) is int and type(count) is int and 1 <= index <= count):
            return None
        return cls(index, count, str(record.get("source") or ""))


# ---------------------------------------------------------------- which shard
def parse_shard(text: str | None, shard_count: int | None = None,
                environ: Mapping[str, str] | None = None) -> Shard | None:
    """`--shard I/N` or `--shard auto` (with `--shard-count N` where the scheduler does not say
    N) -> Shard; None without --shard. Bad input is a ConfigError naming the option."""
    if text is None:
        if shard_count is not None:
            raise ConfigError("only goes with --shard auto (the count of a Kubernetes Indexed Job)",
                              key="--shard-count")
        return None
    if shard_count is not None and shard_count < 1:
        raise ConfigError(f"got {shard_count}, expected the number of shards (1 or more)", key="--shard-count")
    if text.strip().lower() == "auto":
        return shard_from_environment(environ or {}, shard_count)
    if shard_count is not None:
        raise ConfigError("only goes with --shard auto; --shard I/N says the count already", key="--shard-count")
    found = _FORM.match(text)
    if not found:
        raise ConfigError(f"got {text!r}, expected I/N (shard I of N, from 1, e.g. 2/3) or auto", key="--shard")
    index, count = int(found[1]), int(found[2])
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"got {text!r}, expected I/N with 1 <= I <= N (shards count from 1, e.g. 1/{max(count, 1)})",
                          key="--shard")
    return Shard(index, count, f"--shard {index}/{count}")


def shard_from_environment(environ: Mapping[str, str], shard_count: int | None = None) -> Shard:
    """A Slurm job array's task (SLURM_ARRAY_TASK_ID, _COUNT, _MIN, _MAX, _STEP: the array
    need not start at 0 or 1) or a Kubernetes Indexed Job's pod (JOB_COMPLETION_INDEX, from 0;
    the Job's completions come from --shard-count)."""
    if environ.get("SLURM_ARRAY_TASK_ID") not in (None, ""):
        return _slurm(environ, shard_count)
    if environ.get("JOB_COMPLETION_INDEX") not in (None, ""):
        index = _integer(environ, "JOB_COMPLETION_INDEX")
        if shard_count is None:
            raise ConfigError(f"JOB_COMPLETION_INDEX={index} says which shard this pod is, not how many there are: "
                              "pass --shard-count N (the Job's completions)", key="--shard-count")
        if not 0 <= index < shard_count:
            raise ConfigError(f"JOB_COMPLETION_INDEX={index} is outside 0 to {shard_count - 1} (--shard-count "
                              f"{shard_count}): set --shard-count to the Job's completions", key="--shard-count")
        return Shard(index + 1, shard_count, f"JOB_COMPLETION_INDEX={index} of {shard_count}")
    raise ConfigError("auto found neither a Slurm job array (SLURM_ARRAY_TASK_ID) nor a Kubernetes Indexed Job "
                      "(JOB_COMPLETION_INDEX) in the environment; outside a scheduler pass --shard I/N",
                      key="--shard")


def _slurm(environ: Mapping[str, str], shard_count: int | None) -> Shard:
    task = _integer(environ, "SLURM_ARRAY_TASK_ID")
    low = _integer(environ, "SLURM_ARRAY_TASK_MIN", default=0)
    step = _integer(environ, "SLURM_ARRAY_TASK_STEP", default=1) or 1
    count = _integer(environ, "SLURM_ARRAY_TASK_COUNT", default=None)
    high = _integer(environ, "SLURM_ARRAY_TASK_MAX", default=None)
    if count is None:
        if high is None:
            raise ConfigError("SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor "
                              "SLURM_ARRAY_TASK_MAX is: pass --shard I/N", key="--shard")
        count = (high - low) // step + 1
    array = f"array {low}-{high if high is not None else '?'}" + (f":{step}" if step > 1 else "") + f", {count} tasks"
    if high is not None and (high - low) // step + 1 != count:
        raise ConfigError(f"the Slurm array ({array}) is not an even range, so its tasks cannot be numbered 1 to "
                          f"{count}: submit it as --array=0-{count - 1} (a % limit is fine)", key="--shard")
    offset = task - low
    if offset < 0 or offset % step or offset // step >= count:
        raise ConfigError(f"SLURM_ARRAY_TASK_ID={task} is not a task of the {array}", key="--shard")
    if shard_count is not None and shard_count != count:
        raise ConfigError(f"got {shard_count}, but the Slurm array has {count} tasks (SLURM_ARRAY_TASK_COUNT); "
                          "leave --shard-count out under Slurm", key="--shard-count")
    return Shard(offset // step + 1, count, f"SLURM_ARRAY_TASK_ID={task} ({array})")


_MISSING = object()


def _integer(environ: Mapping[str, str], name: str, default: Any = _MISSING) -> Any:
    text = environ.get(name)
    if text in (None, ""):
        if default is _MISSING:
            raise ConfigError(f"{name} is not set", key="--shard")
        return default
    try:
        return int(str(text).strip())
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number", key="--shard") from None


def refuse_with_processes(shard: Shard | None, num_processes: int | None, local_processes: int | None) -> None:
    """A multi-process run measures each trial over several processes that must all run the
    same trials; shards run different trials on independent machines. Not both at once."""
    if shard is not None and (num_processes is not None or local_processes is not None):
        option = "--local-processes" if local_processes is not None else "--num-processes"
        raise ConfigError(f"cannot go with {option}: a shard runs its own trials on one machine, a multi-process "
                          "run runs every trial over several; shard a multi-process sweep by hand (one config "
                          "per batch-size range) instead", key="--shard")


def resumed_shard(given: Shard | None, recorded: Any, run_dir: Any) -> Shard | None:
    """On --resume: the shard run.json recorded, which a --shard given again must match."""
    before = Shard.from_record(recorded)
    if given is None or (before is not None and (given.index, given.count) == (before.index, before.count)):
        return before
    was = f"shard {before}" if before else "a whole sweep, not a shard"
    raise ConfigError(f"got {given}, but {run_dir} is {was}; resume it without --shard (it keeps its own)",
                      key="--shard")


# ---------------------------------------------------------------- which points
def splits_groups(groups: Sequence[Group], shard: Shard | None) -> bool:
    """Whether the shards split groups by batch size (fewer groups than shards)."""
    return shard is not None and len(groups) < shard.count


def _dealing_order(groups: Sequence[Group]) -> list[int]:
    """Group positions, fit groups first, then each predict method's, each in plan order: dealt
    in turn, every shard gets a mix of the expensive and the cheap groups."""
    kinds = list(dict.fromkeys((g.mode, g.method) for g in groups))
    return sorted(range(len(groups)), key=lambda i: (kinds.index((groups[i].mode, groups[i].method)), i))


def shard_points(groups: Sequence[Group], batch_sizes: Sequence[int],
                 shard: Shard | None) -> list[tuple[Group, list[int]]]:
    """The groups this shard runs and the batch sizes of each, in plan order (a group with no
    size here is left out). Without a shard, every group with every size."""
    sizes = sorted(batch_sizes)
    if shard is None:
        return [(g, list(sizes)) for g in groups]
    if not splits_groups(groups, shard):
        mine = {i for turn, i in enumerate(_dealing_order(groups)) if turn % shard.count == shard.index - 1}
        return [(g, list(sizes)) for i, g in enumerate(groups) if i in mine]
    out = []
    for g in groups:
        here = [b for turn, b in enumerate(sizes) if turn % shard.count == shard.index - 1]
        if here:
            out.append((g, here))
    return out


def check_shard(groups: Sequence[Group], shard: Shard | None, find_max: bool) -> None:
    """find-max searches a group's whole ladder: refused when the shards split groups."""
    if find_max and splits_groups(groups, shard):
        raise ConfigError(f"the sweep has {len(groups)} group(s), fewer than the {shard.count} shards, so each "
                          "group's batch sizes are split over shards and find-max cannot search a whole ladder: "
                          f"use at most {len(groups)} shard(s) with find-max, or leave find-max out",
                          key="--shard")
