"""Legend labels for overlaid lines: only what tells the lines apart (the run, the device, the
group), with what they share said once, in the title."""

from __future__ import annotations

from batchbench.report.runs import SavedRun, run_labels

RUN_FACETS = ("name", "device", "copy")


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def facets(runs: list[SavedRun]) -> list[list[tuple[str, str]]]:
    """Per run and group, in build order: (facet, value) pairs that could name its line."""
    out = []
    for run, label in zip(runs, run_labels(runs), strict=True):
        copy = label[len(run.name_on_device):].strip()  # "(folder)" or "#2" for runs that share name and device
        for key in run.groups():
            head, *axes = key.split("|")
            out.append([("name", run.name), ("device", run.device), ("copy", copy), ("group", head)]
                       + [(axis.split("=", 1)[0], axis) for axis in axes])
    return out


def distinct_labels(found: list[list[tuple[str, str]]]) -> list[str]:
    """Each line's label from the facets whose values differ between lines."""
    names = _unique([name for pairs in found for name, _ in pairs])
    differ = {n for n in names if len({dict(pairs).get(n) for pairs in found}) > 1}
    labels = []
    for pairs in found:
        values = dict(pairs)
        run = " on ".join(values[n] for n in ("name", "device") if n in differ and values.get(n))
        if "copy" in differ and values.get("copy"):
            run = f"{run} {values['copy']}".strip()
        group = "|".join(v for n, v in pairs if n in differ and n not in RUN_FACETS)
        labels.append(": ".join(p for p in (run, group) if p) or values["group"])
    return labels


def overlay_title(runs: list[SavedRun]) -> str:
    """Several runs: their names and devices, each said once."""
    return " vs ".join(_unique([r.name for r in runs])) + " · " + " vs ".join(_unique([r.device for r in runs]))
