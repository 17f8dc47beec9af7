"""GPU code paths, exercised with small fakes of NVML and TensorFlow's device and memory API (no GPU here)."""

from __future__ import annotations

import collections
import sys
import types

import pytest

from batchbench.envinfo import gpus_from_nvml
from batchbench.worker import trackers
from batchbench.worker.failures import classify, one_line


class FakeNVML:
    """The slice of pynvml batchbench calls, with one H100 holding one process of ours."""

    class NVMLError(Exception):
        pass

    def __init__(self, pid: int = 4242, fail_init: bool = False):
        self.pid, self.fail_init, self.shutdowns = pid, fail_init, 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        return b"550.54.15"

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"handle{i}"

    def nvmlDeviceGetName(self, handle):
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(total=80 * 2**30, used=3 * 2**30, free=77 * 2**30)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [types.SimpleNamespace(pid=self.pid, usedGpuMemory=1536 * 2**20),
                types.SimpleNamespace(pid=1, usedGpuMemory=512 * 2**20)]


def test_nvml_inventory_reads_name_memory_and_driver():
    info = gpus_from_nvml(FakeNVML())
    assert info["available"] and info["driver"] == "550.54.15"
    assert info["gpus"] == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81920.0,
                             "memory_used_mib": 3072.0}]


def test_no_driver_means_no_gpu_not_an_error():
    info = gpus_from_nvml(FakeNVML(fail_init=True))
    assert info["available"] is False and "no NVIDIA driver" in info["reason"] and info["gpus"] == []


def test_nvml_process_memory_counts_only_our_process(monkeypatch):
    fake = FakeNVML(pid=4242)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert trackers.nvml_process_bytes(4242) == 1536 * 2**20
    assert trackers.nvml_process_bytes(999) is None  # a process holding nothing: empty, not zero
    assert fake.shutdowns == 2


class FakeTF:
    """tf.config's memory API over two fake GPUs; reset_memory_stats starts a new peak."""

    def __init__(self, peaks):
        self.peaks, self.resets = dict(peaks), []
        experimental = types.SimpleNamespace(reset_memory_stats=self.resets.append,
                                             get_memory_info=lambda name: {"current": 0, "peak": self.peaks[name]})
        devices = [types.SimpleNamespace(name=f"/device:{n}") for n in self.peaks]
        self.config = types.SimpleNamespace(experimental=experimental,
                                            list_logical_devices=lambda kind: devices if kind == "GPU" else [])


def test_device_peak_sums_the_allocator_peaks_of_every_gpu(monkeypatch):
    fake = FakeTF({"GPU:0": 300 * 2**20, "GPU:1": 200 * 2**20})
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    tracker = trackers.DeviceMemory("tensorflow")
    tracker.start()
    assert fake.resets == ["GPU:0", "GPU:1"]  # the trial's own peak, not the process's history
    assert tracker.peak_bytes() == 500 * 2**20


def test_no_gpu_gives_no_device_figure(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", FakeTF({}))
    tracker = trackers.DeviceMemory("tensorflow")
    tracker.start()
    assert tracker.peak_bytes() is None


Device = collections.namedtuple("Device", "name")


class FakeTFDevices:
    """tf.config's device set-up over fake GPUs, recording what batchbench asks of it."""

    def __init__(self, gpus: int):
        self.gpus = [Device(f"/physical_device:GPU:{i}") for i in range(gpus)]
        self.cpu = Device("/physical_device:CPU:0")
        self.visible, self.growth, self.logical = None, [], {}
        experimental = types.SimpleNamespace(set_memory_growth=lambda gpu, on: self.growth.append(gpu))
        self.config = types.SimpleNamespace(
            experimental=experimental,
            list_physical_devices=lambda kind: self.gpus if kind == "GPU" else [self.cpu],
            set_visible_devices=lambda devices, kind: setattr(self, "visible", list(devices)),
            set_logical_device_configuration=lambda device, configs: self.logical.__setitem__(device, configs),
            LogicalDeviceConfiguration=lambda memory_limit=None: memory_limit)


def configure(monkeypatch, gpus: int, device: dict, limit: int | None = None):
    from batchbench.worker.backends import get_backend

    fake = FakeTFDevices(gpus)
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    return fake, get_backend("tensorflow").configure_devices(device, limit)


def test_every_gpu_gets_memory_growth_without_a_device_memory_limit(monkeypatch):
    fake, info = configure(monkeypatch, 2, {"use": "auto"})
    assert fake.visible == fake.growth == fake.gpus and not fake.logical
    assert info == {"kind": "gpu", "gpus": ["/physical_device:GPU:0", "/physical_device:GPU:1"]}


def test_a_device_memory_limit_makes_sized_logical_devices_of_the_chosen_gpu(monkeypatch):
    fake, info = configure(monkeypatch, 2, {"use": "gpu:1", "logical_devices": 2}, limit=8 * 2**30)
    assert fake.visible == [fake.gpus[1]] and not fake.growth
    assert fake.logical == {fake.gpus[1]: [4096, 4096]}  # MiB each: the limit shared by the two
    assert info["kind"] == "gpu"


def test_cpu_logical_devices_hide_the_gpus(monkeypatch):
    fake, info = configure(monkeypatch, 1, {"use": "cpu", "logical_devices": 3})
    assert fake.visible == [] and fake.logical == {fake.cpu: [None, None, None]}
    assert info == {"kind": "cpu", "gpus": []}


@pytest.mark.parametrize("gpus, device, key, words", [
    (2, {"use": "gpu:3"}, "device", "asks for gpu:3 but TensorFlow sees 2 GPU(s)"),
    (0, {"use": "gpu"}, "device", "asks for a GPU but TensorFlow sees none"),
    (1, {"use": "gpu", "logical_devices": 2}, "device.logical_devices", "needs sweep.device_memory_limit"),
])
def test_device_requests_tensorflow_cannot_meet_are_config_errors(monkeypatch, gpus, device, key, words):
    from batchbench.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        configure(monkeypatch, gpus, device)
    assert caught.value.key == key and words in caught.value.reason


@pytest.mark.parametrize("message", [
    "Dst tensor is not initialized.",
    "Failed to get convolution algorithm. This is probably because cuDNN failed to initialize",
    "OOM when allocating tensor with shape[8192,4096]",
    "CUDA_ERROR_OUT_OF_MEMORY: out of memory",
])
def test_gpu_disguises_of_an_oom_are_classified_as_oom(message):
    InternalError = type("InternalError", (Exception,), {})
    assert classify(InternalError(message)) == "oom"


def test_resource_exhausted_and_memory_error_are_oom_other_errors_are_not():
    ResourceExhaustedError = type("ResourceExhaustedError", (Exception,), {})
    assert classify(ResourceExhaustedError("anything")) == "oom"
    assert classify(MemoryError()) == "oom"
    assert classify(ValueError("Input 0 is incompatible with layer")) == "error"
    try:
        try:
            raise ResourceExhaustedError("deep")
        except ResourceExhaustedError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert classify(outer) == "oom"  # Keras sometimes wraps the original


def test_one_line_reason_is_short_and_single_line():
    text = one_line(ValueError("a\nb   c" + "x" * 1000))
    assert "\n" not in text and len(text) <= 300 and text.startswith("ValueError: a b c")


def test_a_cgroup_memory_limit_lowers_what_a_trial_may_use(tmp_path):
    from batchbench.envinfo import cgroup_limit_bytes

    (tmp_path / "memory.max").write_text("2147483648\n")
    (tmp_path / "memory.current").write_text("536870912\n")
    assert cgroup_limit_bytes(str(tmp_path)) == (2 * 2**30, 2**29)
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroup_limit_bytes(str(tmp_path)) is None
