"""`batchbench env` as a table."""

from __future__ import annotations

from rich.table import Table

from batchbench.report.tables import make_console
from batchbench.report.text import plain


def render_env(record: dict, warning: str | None = None) -> None:
    console = make_console()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    fw = record.get("framework") or {}
    nvml = record.get("nvml") or {}
    rows = [
        ("CPU", f"{record.get('cpu_model')} ({record.get('cpu_cores_physical')} physical / "
                f"{record.get('cpu_cores_logical')} logical cores)"),
        ("CPU affinity", ", ".join(map(str, record.get("cpu_affinity") or [])) or "unavailable"),
        ("Memory", f"{record.get('memory_total_mib', 0) / 1024:.1f} GiB total, "
                   f"{record.get('memory_available_mib', 0) / 1024:.1f} GiB available"),
        ("Load average", ", ".join(f"{x:.2f}" for x in record.get("load_average") or []) or "unavailable"),
        ("OS / Python", f"{record.get('os')} / {record.get('python')}"),
        ("GPUs (NVML)", "; ".join(f"{g['index']}: {g['name']} {g['memory_total_mib'] / 1024:.1f} GiB"
                                  for g in nvml.get("gpus", [])) or f"none ({nvml.get('reason', 'no GPU')})"),
        ("Driver", nvml.get("driver") or "none"),
        ("Keras", f"{fw.get('keras')} (backend {fw.get('keras_backend')})"),
        *framework_rows(fw),
        ("Thread env", ", ".join(f"{k}={v}" for k, v in (record.get("thread_env") or {}).items()) or "none set"),
    ]
    for key, value in rows:
        table.add_row(key, plain(value))
    console.print(table)
    if warning:
        console.print(plain("warning: ", "yellow") + plain(warning))


def framework_rows(fw: dict) -> list[tuple[str, str]]:
    """The backend's own rows (JAX's or torch's version and devices), and TensorFlow's where
    it is installed or is the backend: its whole view where the worker looked (the TensorFlow
    backend), its version alone where another backend left it unimported."""
    rows = []
    if "jax" in fw:
        rows.append(("JAX", f"{fw['jax']}: " + (", ".join(fw.get("jax_devices") or []) or "no devices")))
    if "torch" in fw:
        cuda = f"CUDA {fw['torch_cuda']}" if fw.get("torch_cuda") else "CPU-only build"
        rows.append(("torch", f"{fw['torch']} ({cuda}): " + (", ".join(fw.get("torch_devices") or []) or "cpu")))
    if fw.get("tensorflow") and "tf_devices" not in fw and fw.get("keras_backend") not in (None, "tensorflow"):
        rows.append(("TensorFlow", f"{fw['tensorflow']} (installed; the {fw['keras_backend']} backend leaves it "
                                   "unimported)"))
    elif fw.get("tensorflow") or fw.get("keras_backend") in (None, "tensorflow"):
        rows += [
            ("TensorFlow", str(fw.get("tensorflow")) if fw.get("tensorflow") else "not installed"),
            ("CUDA build", f"CUDA {fw.get('cuda_build')}, cuDNN {fw.get('cudnn_build')}" if fw.get("cuda_build")
             else "CPU-only build"),
            ("TF devices", ", ".join(d["name"] for d in fw.get("tf_devices", [])) or str(fw.get("error", ""))),
            ("TF threads", f"intra-op {fw.get('tf_threads', {}).get('intra_op')}, inter-op "
                           f"{fw.get('tf_threads', {}).get('inter_op')} (0 = TensorFlow decides)"),
        ]
    else:
        rows.append(("TensorFlow", "not installed"))
    return rows
