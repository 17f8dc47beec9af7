"""YAML text or a file -> a validated Config, and command-line overrides of it.

The YAML is read with a bounded safe loader: a config is a few KiB of plain YAML, so whatever is
beyond that (aliases that expand to millions of values, deep nesting, huge integers, tags beyond
plain YAML, a key given twice) is a ConfigError that names the file and the line, never a hang,
a traceback or a silently overwritten value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from batchbench.config.messages import clean_loc, describe, known_keys, problems_error
from batchbench.config.schema import Config
from batchbench.config.values import MAX_CONFIG_BYTES, MAX_INT_DIGITS, MAX_YAML_DEPTH, MAX_YAML_NODES, folder_name, show
from batchbench.errors import ConfigError

# ---------------------------------------------------------------- YAML
_YAML = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}


class _LimitError(yaml.MarkedYAMLError):
    """A file beyond what a config can be; the problem reads 'got ..., expected ...'."""

    def __init__(self, problem: str, mark):
        super().__init__(problem=problem, problem_mark=mark)


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML):] if tag.startswith(_YAML) else tag


class _ConfigLoader(yaml.SafeLoader):
    """The safe loader, bounded: a key given twice in one mapping is an error, not a silent overwrite;
    nesting, alias expansion and integers have limits; recursive aliases and tags beyond plain YAML
    are refused; an unquoted date stays text (no config key is a date, and every value travels to
    the worker as JSON)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _YAML + "timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._open_anchors: set[str] = set()

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open_anchors:
                raise _LimitError(f"got the alias *{event.anchor} inside its own anchor &{event.anchor}, "
                                  "expected aliases that do not contain themselves", event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        if self._depth >= MAX_YAML_DEPTH:
            raise _LimitError(f"got values nested more than {MAX_YAML_DEPTH} levels deep, "
                              "expected a flatter config", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            raise _LimitError(f"got the anchor &{anchor} twice (first on line {first}), expected each anchor once",
                              event.start_mark)
        self._depth += 1
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _bounded(node, {}, 1)
        return node

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # the values a constructor cannot make
            raise _LimitError(f"got {show(node.value) if isinstance(node.value, str) else 'a value'} that YAML "
                              f"cannot read ({exc}), expected plain YAML values", node.start_mark) from None

    def construct_yaml_int(self, node):
        digits = len(str(node.value).replace("_", "").lstrip("+-"))
        if digits > MAX_INT_DIGITS:
            raise _LimitError(f"got an integer of {digits} digits, expected at most {MAX_INT_DIGITS} digits",
                              node.start_mark)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == _YAML + "merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"got the key {key!r} twice (first on line {first.line + 1}), "
                    "expected each key once", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.add_constructor(_YAML + "int", _ConfigLoader.construct_yaml_int)


def _bounded(node: yaml.Node, sizes: dict[int, tuple[int, int]], depth: int) -> tuple[int, int]:
    """(values, levels) under ``node`` with aliases expanded, refusing any beyond the limits and any
    tag beyond plain YAML. ``sizes`` holds nodes already counted (an alias is a shared node)."""
    known = sizes.get(id(node))
    if known is None:
        if node.tag not in _PLAIN_TAGS:
            raise _LimitError(f"got the YAML tag {_show_tag(node.tag)}, expected plain YAML: text, numbers, "
                              "true/false, null, lists and mappings (no tags such as !!python or !!binary)",
                              node.start_mark)
        count, levels = 1, 1
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
        for child in children:
            child_count, child_levels = _bounded(child, sizes, depth + 1)
            count, levels = count + child_count, max(levels, child_levels + 1)
            if count > MAX_YAML_NODES:
                raise _LimitError(f"got more than {MAX_YAML_NODES:,} values here once aliases are expanded, "
                                  "expected a config of a few hundred", node.start_mark)
        known = sizes[id(node)] = (count, levels)
    if depth - 1 + known[1] > MAX_YAML_DEPTH:
        raise _LimitError(f"got values nested more than {MAX_YAML_DEPTH} levels deep once aliases are expanded, "
                          "expected a flatter config", node.start_mark)
    return known


def parse_yaml(text: str, source: str = "config") -> Any:
    """YAML text -> plain data (dicts, lists, text, numbers, booleans, None) with every protection
    read_yaml has, or a ConfigError that names ``source`` (and the line)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"got {len(text):,} characters, expected a YAML config of at most "
                          f"{MAX_CONFIG_BYTES // 2**20} MiB", file=source)
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except _LimitError as exc:
        mark = exc.problem_mark
        raise ConfigError(exc.problem, file=source, key=f"line {mark.line + 1}, column {mark.column + 1}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = exc.problem or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError):
            message = problem if problem.startswith("got ") else \
                f"YAML error: {problem}, expected plain YAML (text, numbers, lists and mappings)"
        else:
            tabs = " (YAML is indented with spaces, not tabs)" if "\\t" in problem else ""
            message = f"YAML syntax error: {problem}{tabs}"
        raise ConfigError(message, file=source, key=where) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(f"got the character #x{code:04x}, expected printable text (YAML allows no "
                          "control characters)", file=source, key=f"line {line}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {' '.join(str(exc).split())}", file=source) from None
    except RecursionError:  # the limits above should make this unreachable; never a traceback
        raise ConfigError(f"got values nested too deeply, expected at most {MAX_YAML_DEPTH} levels",
                          file=source) from None


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a config file, or a ConfigError that names the file (and the line)."""
    path = Path(path)
    label = str(path)
    if not path.exists():
        raise ConfigError("not found, expected the path of a YAML config file", file=label)
    if path.is_dir():
        raise ConfigError("is a folder, expected a YAML config file", file=label)
    try:
        with path.open("rb") as stream:
            blob = stream.read(MAX_CONFIG_BYTES + 1)  # bounded: the path may be /dev/zero or a huge file
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot be read ({reason}), expected a readable YAML config file", file=label) from None
    if len(blob) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES // 2**20} MiB, expected a YAML config file "
                          "(a config is a few KiB)", file=label)
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text, expected a YAML config file", file=label) from None
    return parse_yaml(text, label)


# ---------------------------------------------------------------- config
_PATH_KEYS = (("model", "path"), ("data", "npz", "path"), ("data", "csv", "path"), ("data", "image_dir", "path"),
              ("output", "dir"), ("output", "tensorboard"))


def _resolve_paths(raw: dict, base_dir: Path) -> dict:
    data = copy.deepcopy(raw)
    for path_keys in _PATH_KEYS:
        node = data
        for k in path_keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(path_keys[-1]), str):
            p = Path(node[path_keys[-1]]).expanduser()
            node[path_keys[-1]] = str(p if p.is_absolute() else (base_dir / p).resolve())
    return data


def config_from_dict(raw: Any, source: str | None = None, base_dir: str | Path = ".") -> Config:
    """Validate an already-parsed mapping. ``source`` names the file in messages; relative paths
    are resolved against ``base_dir``."""
    label = source or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"got {type(raw).__name__} {show(raw)}, expected a mapping with keys "
                          f"{', '.join(known_keys(Config))}", file=label)
    base = Path(base_dir).resolve()
    data = _resolve_paths(raw, base)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise problems_error([describe(e) for e in exc.errors()], label) from None
    config.source_file = source
    config.base_dir = str(base)
    if "name" not in raw and source:
        config.name = folder_name(Path(source).stem)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    raw = read_yaml(path)
    if raw is None:
        raise ConfigError("is empty, expected a mapping with at least model and sweep "
                          "(e.g. model: {builtin: mlp} and sweep: {batch_sizes: [8, 16, 32]})", file=str(path))
    return config_from_dict(raw, source=str(path), base_dir=path.parent)


def apply_overrides(config: Config, **overrides: Any) -> Config:
    """Command-line overrides of sweep keys (None means 'not given'), validated like the file itself;
    an error names the option (``--batch-sizes``), not the file."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return override_section(config, "sweep", given, other=lambda loc: "--" + str(loc[-1] if loc else "?"))


def override_section(config: Config, section: str, given: dict[str, Any], other=None) -> Config:
    """`given` (keys of `section` set on the command line) laid over the config and validated like
    the file itself. An error in a key of `section` names its option (``--batch-sizes``); any other
    names ``other(loc)``, by default the key's dotted path."""
    if not given:
        return config
    raw = config.model_dump(mode="json")
    raw[section] = {**(raw.get(section) or {}), **given}
    try:
        updated = Config.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = clean_loc(tuple(error["loc"]))
            _, message = describe(error)
            if len(loc) > 1 and loc[0] == section and (other is not None or loc[1] in given):
                name = "--" + str(loc[1])
            else:
                name = other(loc) if other is not None else ".".join(map(str, loc))
            problems.append((name.replace("_", "-") if name.startswith("--") else name, message))
        raise problems_error(problems, None) from None
    updated.source_file, updated.base_dir = config.source_file, config.base_dir
    return updated
