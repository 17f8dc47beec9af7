"""One job in a fresh worker child: `env`, `preflight` (build everything, check it fits
together, measure nothing) or `trial` (one measured point, or a shared round: several points
of one group timed one after another on one model, see `_measure_shared`)."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from batchbench.errors import ConfigError
from batchbench.worker.backends import get_backend
from batchbench.worker.failures import classify, one_line, user_code_error
from batchbench.worker.processes import join_processes, leave_processes
from batchbench.worker.timing import WindowRule
from batchbench.worker.trackers import WINDOW_PATH_KEY, DeviceMemory, HostMemory, MemoryWindow, MiB, nvml_process_bytes


def run_job(request: dict) -> dict:
    op = request["op"]
    try:
        if op == "env":
            from batchbench.worker.devices import framework_info

            return {"status": "ok", "info": framework_info()}
        if op == "preflight":
            return preflight(request["config"], request.get("axes") or {})
        if op == "trial":
            return run_trial(request["config"], request["trial"], request.get(WINDOW_PATH_KEY),
                             request.get("result_path"))
        if op == "noise_scale":
            return noise_scale(request["config"], request.get("axes") or {})
        if op in ("serving_profile", "serving_points"):
            from batchbench.worker.serving import run_serving_job

            return run_serving_job(request)
        raise ValueError(f"unknown op {op!r}")
    except ConfigError as exc:
        # traceback: the user's own frames when the error was raised in their code, else None.
        return {"status": "config_error", "key": exc.key, "message": exc.reason,
                "traceback": getattr(exc, "user_traceback", None)}
    except BaseException as exc:  # noqa: BLE001 - every ending becomes a result
        traceback.print_exc()
        return {"status": classify(exc), "error": one_line(exc)}
    finally:
        if (request.get("config") or {}).get("_distributed"):
            leave_processes()


def _setup(config: dict, axes: dict) -> dict:
    backend = axes.get("backend", "tensorflow")
    framework = get_backend(backend)
    limit = config["sweep"].get("device_memory_limit")
    framework.prepare_devices(config["device"], limit)
    distributed = config.get("_distributed")
    joined = join_processes(distributed) if distributed else {}  # before JAX starts its devices
    device_info = framework.configure_devices(config["device"], limit)
    import keras

    precision = axes.get("precision", "float32")
    keras.mixed_precision.set_global_policy(precision)
    framework.seed(int(config["sweep"]["seed"]))
    device_info["strategy"] = make_strategy(axes.get("strategy", "default"), backend, device_info)
    device_info.update(joined)
    return device_info


def make_strategy(name: str, backend: str, device_info: dict):
    """tf.distribute.MirroredStrategy over the devices `device` names; None for the default."""
    if name != "mirrored":
        return None
    framework = get_backend(backend)
    if not framework.mirrored_strategy:
        raise ConfigError("strategy: mirrored is TensorFlow's; use backend tensorflow", key="sweep.strategy")
    return framework.make_mirrored_strategy(device_info)


def _scope(device_info: dict):
    import contextlib

    strategy = device_info.get("strategy")
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _replicas(device_info: dict) -> int:
    strategy = device_info.get("strategy")
    return int(strategy.num_replicas_in_sync) if strategy is not None else 1


class Workload:
    """The model and data of a trial, built the same way for every trial."""

    def __init__(self, config: dict, axes: dict):
        from batchbench.worker import data as data_mod
        from batchbench.worker.models import build_model, count_params, has_batch_norm, is_compiled

        self.config = config
        seed = int(config["sweep"]["seed"])
        self.sequence_length = axes.get("sequence_length")
        file_data = data_mod.load_file_data(config, config["_base_dir"], self.sequence_length)
        shape = None
        classes = None
        if file_data is not None:
            arrays = data_mod.arrays_of(file_data)
            first = data_mod.leaves(arrays.x)[0]
            shape = tuple(first.shape[1:])
            classes = getattr(file_data, "num_classes", None) or \
                (data_mod.num_classes_of(arrays.y) if arrays.y is not None else None) or 1  # 1: a regression head
        import keras

        self._build = lambda: build_model(config, shape, classes)
        self.seed = seed
        self.framework = get_backend(axes.get("backend", "tensorflow"))
        self.framework.seed(seed)
        self.model = self._build()
        self.compiled_by_source = is_compiled(self.model)
        self.input_shape = config["model"].get("input_shape") or \
            (config["data"].get("synthetic") or {}).get("input_shape")
        if self.input_shape and not getattr(self.model, "inputs", None) and hasattr(self.model, "build"):
            try:  # a model defined without an Input: build it for the shape the config gives
                self.model.build((None, *self.input_shape))
            except Exception as exc:  # noqa: BLE001
                raise ConfigError(f"the model cannot be built for input shape {self.input_shape}: {one_line(exc)}",
                                  key="model.input_shape") from None
        self.inference_only = not isinstance(self.model, keras.Model)
        if self.inference_only:  # a SavedModel layer: wrap it so predict works
            self.model = _wrap_layer(self.model, file_data, config)
        self.params = count_params(self.model)
        self.has_bn = has_batch_norm(self.model)
        if file_data is None:
            from batchbench.worker.models import compile_model

            compile_model(self.model, config)  # the loss decides the synthetic targets' kind
            spec = {**(config["data"]["synthetic"] or {})}
            spec.setdefault("input_shape", None)
            spec["input_shape"] = spec["input_shape"] or config["model"].get("input_shape")
            file_data = data_mod.synthetic(self.model, spec, seed, self.sequence_length)
        if self.sequence_length is not None:
            _check_open_length(self.model)
        data_mod.check_against_model(self.model, file_data, data_mod.data_key(config, "x"))
        self.data = file_data
        split = float(config["data"].get("validation_split") or 0.0)
        if hasattr(file_data, "split"):  # a tf.data pipeline
            self.train, self.val = file_data.split(split)
            return
        n = file_data.samples
        n_val = int(n * split)
        self.train = file_data.take(0, n - n_val)
        self.val = file_data.take(n - n_val, n) if n_val else None

    @property
    def pipeline(self) -> bool:
        return hasattr(self.data, "batched")


    def fresh_model(self):
        """The same initial weights again: reseed, rebuild."""
        self.framework.seed(self.seed)
        model = self._build()
        if self.input_shape and not getattr(model, "inputs", None) and hasattr(model, "build"):
            model.build((None, *self.input_shape))
        return _wrap_layer(model, self.data, self.config) if self.inference_only else model


def _check_open_length(model) -> None:
    """sweep.sequence_length fills a None time dimension: a fixed one cannot follow it."""
    for tensor in list(getattr(model, "inputs", None) or []):
        shape = tuple(tensor.shape)
        if len(shape) < 2 or shape[1] is not None:
            raise ConfigError(f"the model's input {getattr(tensor, 'name', '')} has shape {shape}, a fixed length; "
                              "sequence_length needs inputs whose time dimension is None, such as "
                              "keras.Input(shape=(None,))", key="sweep.sequence_length")


def _wrap_layer(layer, file_data, config):
    import keras

    from batchbench.worker.data import leaves

    shape = config["model"].get("input_shape")
    if shape is None and file_data is not None:
        from batchbench.worker.data import arrays_of

        shape = leaves(arrays_of(file_data).x)[0].shape[1:]
    if shape is None:
        raise ConfigError("a SavedModel folder needs model.input_shape (or file data) to be called",
                          key="model.input_shape")
    inputs = keras.Input(shape=tuple(shape))
    try:
        out = layer(inputs)
    except Exception as exc:  # noqa: BLE001 - TensorFlow's signature errors come as several types
        raise ConfigError(f"its serving_default signature cannot be called on one input of shape "
                          f"{(None, *shape)}: {one_line(exc)}", key="model.path") from None
    if isinstance(out, dict):
        out = next(iter(out.values()))
    return keras.Model(inputs, out)


def preflight(config: dict, axes: dict) -> dict:
    """Everything a trial would build, checked once before any trial runs."""
    device_info = _setup(config, axes)
    with _scope(device_info):
        out = _preflight(config, axes, device_info)
    out.update({k: device_info[k] for k in ("processes", "devices_per_process", "total_devices") if k in device_info})
    from batchbench.worker.devices import framework_info

    out["framework"] = framework_info()  # what TensorFlow sees, for run.json: no extra job needed
    return out


def _preflight(config: dict, axes: dict, device_info: dict) -> dict:
    work = Workload(config, axes)
    import numpy as np

    from batchbench.worker import data as data_mod
    from batchbench.worker.data import leaves
    from batchbench.worker.models import check_compile_names, has_convolution, loss_name

    arrays = data_mod.arrays_of(work.data)
    x_head = _head(arrays.x, 2)
    if work.pipeline:
        _check_pipeline_sweep(work, config)
    try:
        y_pred = work.model(x_head, training=False)
    except Exception as exc:  # noqa: BLE001 - a mismatch surfaces as any of TF's errors
        if classify(exc) == "oom":
            raise
        # A layer of the user's own may be what raised: keep their frames.
        raise user_code_error(f"the model cannot take this data: {one_line(exc)}",
                              data_mod.data_key(config, "x"), exc, base_dir=config["_base_dir"]) from None
    fit = "fit" in config["sweep"]["modes"]
    if work.inference_only and fit:
        raise ConfigError("this model loads for inference only (a SavedModel folder): use modes: [predict]",
                          key="sweep.modes")
    if not work.inference_only:
        if not work.compiled_by_source:  # DESIGN: the config's compile applies to uncompiled models only
            check_compile_names(config)
        if fit:
            _check_training(work, config, x_head, y_pred)
    target = config["sweep"].get("target")
    if target and "fit" in config["sweep"]["modes"]:
        _check_target_metric(work, config, target["metric"])
    return {
        "status": "ok",
        "params": work.params,
        "has_batch_norm": work.has_bn,
        "has_conv": has_convolution(work.model),
        "loss": loss_name(work.model) if fit else None,
        "inference_only": work.inference_only,
        "samples": work.data.samples,
        "train_samples": work.train.samples,
        "val_samples": work.val.samples if work.val else 0,
        "input_shapes": [list(a.shape[1:]) for a in leaves(arrays.x)],
        "model_name": getattr(work.model, "name", ""),
        "notes": list(getattr(work.data, "notes", None) or []),
        "metrics": [m for m in (config["model"].get("compile") or {}).get("metrics") or []],
        "device": get_backend(axes.get("backend", "tensorflow")).describe_device(),
        "x_dtype": str(np.asarray(leaves(arrays.x)[0]).dtype),
        "replicas": _replicas(device_info),
    }


def _check_pipeline_sweep(work: Workload, config: dict) -> None:
    """What a tf.data pipeline does not take (yet): the quality runs and multi-process runs
    read arrays."""
    from batchbench.worker import data as data_mod
    from batchbench.worker.pipelines import check_pipeline

    sweep = config["sweep"]
    check_pipeline(work.model, work.data, sweep["modes"], data_mod.data_key(config, "x"))
    for name in ("epochs", "target"):
        if sweep.get(name) and "fit" in sweep["modes"]:
            raise ConfigError(f"the quality run ({name}) trains on arrays; with a tf.data pipeline batchbench times "
                              "fit and predict only: drop it, or return arrays", key=f"sweep.{name}")
    if config.get("_distributed"):
        raise ConfigError("a multi-process run splits array data between the processes; a tf.data pipeline "
                          "is not split: return arrays", key=data_mod.data_key(config, "x"))


def _check_training(work: Workload, config: dict, x_head: Any, y_pred: Any) -> None:
    """What fit would meet in its first step, checked on two rows, eagerly (nothing is
    traced): the optimizer, the targets against the output and loss, the metrics."""
    from batchbench.worker import data as data_mod
    from batchbench.worker import quality
    from batchbench.worker.models import check_metrics, compile_model

    compile_model(work.model, config)
    rule = config["sweep"].get("lr_scaling") or "none"
    if rule != "none" and quality.reference_learning_rate(config, work.model) is None:
        raise ConfigError("lr_scaling needs a constant learning rate, but the model's optimizer follows a schedule",
                          key="sweep.lr_scaling")
    # Multi-process: every process must run the same device ops in step, so the checks that
    # compute on the device stay out; those on the arrays alone still run.
    eager = not config.get("_distributed")
    compile_spec = config["model"].get("compile") or {}
    y_key = data_mod.data_key(config, "y")
    if work.data.source == "synthetic" and compile_spec.get("loss"):
        y_key = "model.compile.loss"  # batchbench made the targets for the loss: the loss is the odd one out
    arrays = data_mod.arrays_of(work.data)
    try:
        data_mod.check_targets(work.model, arrays, y_key, x_head, y_pred, eager=eager)
    except ConfigError as exc:
        if work.compiled_by_source or compile_spec.get("loss"):
            raise
        raise ConfigError(f"{exc.reason} (that loss is batchbench's default for this model; "
                          "set model.compile.loss)", key=exc.key) from None
    if eager:
        check_metrics(work.model, config, x_head, _head(arrays.y, data_mod.count_rows(x_head)), y_pred,
                      from_config=not work.compiled_by_source)


def _check_target_metric(work: Workload, config: dict, metric: str) -> None:
    from batchbench.worker.models import compile_model

    compile_model(work.model, config)
    n = min(8, work.train.samples)
    logs = work.model.evaluate(_head(work.train.x, n), _head(work.train.y, n), verbose=0, return_dict=True)
    names = sorted(logs)
    allowed = set(names) | ({f"val_{k}" for k in names} if work.val is not None else set())
    if metric not in allowed:
        hint = "" if work.val is not None or not metric.startswith("val_") else \
            " (validation metrics need data.validation_split)"
        raise ConfigError(f"got {metric!r}, expected one of {', '.join(sorted(allowed))}{hint}",
                          key="sweep.target.metric")


def _head(x: Any, n: int) -> Any:
    from batchbench.worker.data import slice_rows

    return slice_rows(x, 0, n)


def run_trial(config: dict, trial: dict, window_path: str | None = None, result_path: str | None = None) -> dict:
    """One measured point. Its memory figures cover its memory window (see MemoryWindow);
    `window_path` is where the window's end is marked for the controller's watcher. A shared
    round reports each finished size in `result_path` as it goes (status "partial")."""
    host = HostMemory()
    host.start()
    axes = trial.get("axes") or {}
    backend = axes.get("backend", "tensorflow")
    device_info = _setup(config, axes)
    from batchbench.worker.trackers import EnergyMeter

    meter = EnergyMeter(on_gpu=get_backend(backend).on_gpu(device_info))

    def placed(one: dict) -> dict:
        """A size's result with where it ran: the replicas and processes."""
        one["replicas"] = device_info.get("total_devices") or _replicas(device_info)
        for key in ("processes", "devices_per_process"):
            if key in device_info:
                one[key] = device_info[key]
        return one

    with _scope(device_info):
        if trial.get("shared"):
            return _measure_shared(config, trial, axes, backend, meter, host, placed, result_path)
        return placed(_measure(config, trial, axes, backend, meter, host, window_path))


def _measure_shared(config: dict, trial: dict, axes: dict, backend: str, meter, host, placed,
                    result_path: str | None = None) -> dict:
    """A shared round: the batch sizes in `trial["shared"]` (the controller's seeded order),
    each measured as its own trial would be, one after another on one model and its data in
    this one process. No memory figures: a process that ran several sizes holds the largest
    one's peak, and memory is measured alone in each point's first round. A size that fails
    is its own failed result; the others stand. After each size the sizes so far are written
    to `result_path` ("partial"), so a process ended later (Ctrl-C, a crash, the timeout)
    still hands the controller what it finished; the job's final result replaces it."""
    work = Workload(config, axes)
    out = []
    for batch_size in trial["shared"]:
        one = {**trial, "batch_size": batch_size, "shared": None}
        try:
            result = _measure(config, one, axes, backend, meter, host, work=work)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - this size's ending becomes its result
            traceback.print_exc()
            result = {"status": classify(exc), "error": one_line(exc)}
        result.update(peak_host_mib=None, peak_device_mib=None, nvml_process_mib=None, memory_window="shared")
        out.append(placed(result))
        if result_path:
            _hand_over(result_path, out)
    return {"status": "ok", "shared": out}


def _hand_over(result_path: str, finished: list[dict]) -> None:
    """The sizes a shared round finished so far, in its result file (the job's final result
    replaces it). Best effort: a full disk costs the hand-over, not the round."""
    from batchbench.worker.server import write_result

    try:
        write_result(result_path, {"status": "partial", "shared": finished})
    except OSError as exc:
        print(f"batchbench: cannot write the shared round's sizes so far to {result_path}: {exc}", file=sys.stderr)
        try:
            os.unlink(result_path + ".tmp")
        except OSError:
            pass


def _measure(config: dict, trial: dict, axes: dict, backend: str, meter, host, window_path: str | None = None,
             work: Workload | None = None) -> dict:
    device = DeviceMemory(backend)
    device.start()
    window = MemoryWindow(host, device, window_path)
    from batchbench.worker.models import compile_model
    from batchbench.worker.timing import clock

    started = clock()
    work = work or Workload(config, axes)
    sweep = config["sweep"]
    batch_size = int(trial["batch_size"])
    if trial.get("phase") == "confirm":
        # The found maximum is confirmed by a full pass: a whole epoch for fit, not a few
        # steps. A predict trial's memory window is a whole call over the data already.
        passes = trial["mode"] == "fit" and not getattr(work.train, "infinite", False)
        min_steps = max(sweep["min_steps"], work.train.samples // batch_size) if passes else sweep["min_steps"]
        sweep = {**sweep, "repeats": 1, "min_steps": min_steps,
                 "stability": {**(sweep.get("stability") or {}), "window_steps": 1, "tolerance": None}}
    else:
        sweep = windows_with_rounds(sweep)
    jit = axes.get("jit_compile", "auto")
    extra: dict[str, Any] = {}
    if trial["mode"] == "fit":
        if work.inference_only:
            raise ConfigError("this model loads for inference only (a SavedModel folder); "
                              "use modes: [predict]", key="sweep.modes")
        from batchbench.worker import quality
        from batchbench.worker.fit import measure_fit

        rule = sweep.get("lr_scaling") or "none"
        reference_lr = quality.reference_learning_rate(config, work.model)
        if reference_lr is None and rule != "none":
            raise ConfigError("lr_scaling needs a constant learning rate, but the model's optimizer follows "
                              "a schedule", key="sweep.lr_scaling")
        lr = None if reference_lr is None else quality.scaled_learning_rate(
            reference_lr, rule, batch_size, sweep.get("base_batch_size") or min(sweep["batch_sizes"]))
        # The model's own rate stays untouched unless a scaling rule asks for another.
        compile_model(work.model, config, jit_compile=jit, learning_rate=lr if rule != "none" else None)
        dist = config.get("_distributed") or {}
        # A pipeline's in-memory copy for the compute-only phase is no part of what the batch
        # size costs: its window closes before it (arrays are in memory already: no copy).
        measured = measure_fit(work.model, work.train, batch_size, sweep, meter=meter,
                               processes=dist.get("num_processes", 1), process_id=dist.get("process_id", 0),
                               before_compute_only=(lambda: window.close("trial")) if work.pipeline else None,
                               diagnose=_diagnoses(trial, sweep, work))
        extra["learning_rate"] = lr
        measured.pop("final_loss", None)  # a timing run's loss is no quality figure
        # The quality run (time to target) once per point: in its first round.
        if (sweep.get("epochs") or sweep.get("target")) and trial.get("phase") != "confirm" \
                and int(trial.get("round") or 1) == 1:
            model = work.fresh_model()
            compile_model(model, config, jit_compile=jit, learning_rate=lr if rule != "none" else None)
            extra.update(quality.train_for_quality(model, work.train, work.val, batch_size, sweep, lr,
                                                   reference_lr, work.seed))
    else:
        from batchbench.worker import predict

        if not work.inference_only:
            compile_model(work.model, config, jit_compile=jit)
        if trial["method"] == "serve":
            # A server answers requests it holds: a pipeline's batches are read into memory first.
            x = _in_memory(work, batch_size).x if work.pipeline else work.data.x
            measured = predict.measure_serve(work.model, x, batch_size, sweep,
                                             jit_compile=getattr(work.model, "jit_compile", False) is True,
                                             meter=meter, window_closed=lambda: window.close("first_pass"))
        else:
            measured = predict.measure_predict(work.model, work.data if work.pipeline else work.data.x, batch_size,
                                               sweep, meter=meter, window_closed=lambda: window.close("first_call"))
            if _diagnoses(trial, sweep, work):
                try:  # the input-bound diagnosis: the same batches held in memory
                    x = work.data.cached(batch_size, work.data.cache_batches(batch_size, work.data.steps(batch_size)))
                    measured["compute_only"] = predict.compute_only(work.model, x, batch_size, sweep, measured)
                except Exception:  # noqa: BLE001 - the measurement stands; the diagnosis is extra
                    traceback.print_exc()
        ref = trial.get("reference_path")
        if ref:
            try:
                extra.update(_consistency(work, batch_size, ref, trial.get("reference_batch_size")))
            except Exception:  # noqa: BLE001 - the measurement stands; the check is extra
                traceback.print_exc()
                extra["consistent"] = None
    measured["wall_s"] = clock() - started
    window.close("trial")  # fit: the whole trial; predict and serve closed theirs already
    peak_host, peak_device = window.host_bytes, window.device_bytes
    return {
        "status": "ok",
        "measurement": measured,
        "peak_host_mib": peak_host / MiB if peak_host is not None else None,
        "peak_device_mib": peak_device / MiB if peak_device is not None else None,
        "memory_window": window.kind,  # what the peaks cover: "trial", "first_call" or "first_pass"
        "nvml_process_mib": (lambda b: b / MiB if b else None)(nvml_process_bytes(os.getpid())),
        "params": work.params,
        "bn": work.has_bn,
        "device": get_backend(backend).describe_device(),
        "quality": extra,
    }


def windows_with_rounds(sweep: dict) -> dict:
    """With rounds (`rounds.max` > 1) every round times exactly max(repeats, 3) windows, none
    extended until they agree (`stability.max_windows` is for a single-round sweep): the rounds
    are the independent unit and carry the noise, waiting inside one trial for a calm stretch of
    the machine costs time and favours calm moments, and the rounds pooled into one figure are
    then timed alike. `stable` still says whether the last three windows agreed."""
    rounds = sweep.get("rounds") or {}
    if int(rounds.get("max", 1) if isinstance(rounds, dict) else rounds) <= 1:
        return sweep
    stability = sweep.get("stability") or {}
    return {**sweep, "stability": {**stability, "max_windows": max(int(sweep["repeats"]), WindowRule.agree)}}


def _in_memory(work: Workload, batch_size: int, batches: int | None = None):
    """A pipeline's first whole batches (all of a pass, within pipelines.CACHE_BYTES) as arrays."""
    data = work.data
    return data.in_memory(batch_size, data.cache_batches(batch_size, batches or data.steps(batch_size)))


def noise_scale(config: dict, axes: dict) -> dict:
    """The gradient noise scale at the shared initial weights."""
    from batchbench.worker import quality
    from batchbench.worker.models import compile_model

    _setup(config, axes)
    if not get_backend(axes.get("backend", "tensorflow")).noise_scale:
        return {"status": "ok", "gradient_noise_scale": None,
                "note": "the noise-scale estimate uses TensorFlow's GradientTape: run it with backend tensorflow"}
    work = Workload(config, axes)
    compile_model(work.model, config)
    sizes = config["sweep"]["batch_sizes"]
    n = work.train.samples
    b_small = max(2, min(sizes))
    b_big = min(n, max(max(sizes), 8 * b_small))
    if b_big <= b_small:
        return {"status": "ok", "gradient_noise_scale": None,
                "note": f"needs a large batch well above {b_small} within the {n} training samples"}
    return {"status": "ok", **quality.gradient_noise_scale(work.model, work.train, b_small, b_big, work.seed)}


def _diagnoses(trial: dict, sweep: dict, work: Workload) -> bool:
    """The input-bound diagnosis (unless `sweep.input_bound_check: false`) once per point, in its
    first round (as the quality run and the consistency check): later rounds tighten the
    throughput figure, and the diagnosis would add a second or two to each of them. Pipelines
    only: arrays are in memory already, so the compute-only phase would feed them exactly as the
    measured one did and time the same work twice; its ratio could only be noise (single array
    points read 3-4x on a busy machine), a verdict no input could earn."""
    return work.pipeline and sweep.get("input_bound_check", True) is not False \
        and int(trial.get("round") or 1) == 1 and trial.get("phase") != "confirm"


def _consistency(work: Workload, batch_size: int, reference_path: str, reference_batch_size: int | None = None) -> dict:
    """Predictions at this batch size against those at the group's smallest one (made here, at
    that size, when no trial before made them: a shard may hold only the larger sizes)."""
    import keras
    import numpy as np

    from batchbench.runfiles import open_read, write_atomic
    from batchbench.worker.data import count_rows as data_count_rows
    from batchbench.worker.predict import predictions

    x = work.data.x
    if work.pipeline:
        # A pipeline may shuffle each pass: its first pass (read before any trial, the same in
        # every trial process) is the one whose order is known.
        x = work.data.head.x
        if batch_size > data_count_rows(x):
            return {"max_abs_diff": None, "consistent": None}
    preds = predictions(work.model, x, batch_size)
    if os.path.exists(reference_path):
        with open_read(reference_path, binary=True) as fh:
            reference = np.load(fh)
    else:
        import io

        own = reference_batch_size in (None, batch_size)
        reference = preds if own else predictions(work.model, x, reference_batch_size)
        buf = io.BytesIO()
        np.save(buf, reference)
        write_atomic(reference_path, buf.getvalue(), fsync=False)  # never through a planted link
        if own:
            return {"max_abs_diff": 0.0, "consistent": True}
    k = min(len(preds), len(reference))
    diff = float(np.max(np.abs(preds[:k] - reference[:k])))
    # Batch size may change the order of float reductions (different kernels), never the answer:
    # tolerate rounding at the compute precision, relative to the outputs' scale.
    policy = keras.mixed_precision.global_policy().compute_dtype
    rtol = 1e-2 if policy in ("float16", "bfloat16") else 1e-4
    scale = max(1.0, float(np.max(np.abs(reference))))
    return {"max_abs_diff": diff, "consistent": diff <= rtol * scale}


if __name__ == "__main__":  # pragma: no cover - debugging aid
    print(run_job({"op": "env"}), file=sys.stderr)
