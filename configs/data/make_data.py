"""Rebuild the example data beside this file: `python configs/data/make_data.py`.

housing.csv  400 houses, 8 numeric features and a `price` target (thousands), a regression
             table made up from a fixed seed (nothing downloaded).
digits.npz   scikit-learn's 8x8 digits: x float32 (1797, 64) scaled to 0..1, y int32 labels 0..9.
Both come out byte-for-byte the same on every run.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def housing(rows: int = 400, seed: int = 7) -> str:
    rng = np.random.default_rng(seed)
    sqft = rng.normal(1800, 550, rows).clip(450, 4800)
    bedrooms = np.clip(np.round(sqft / 650 + rng.normal(0, 0.7, rows)), 1, 7)
    bathrooms = np.clip(np.round((bedrooms * 0.6 + rng.normal(0.4, 0.5, rows)) * 2) / 2, 1, 5)
    age_years = rng.integers(0, 90, rows).astype(float)
    lot_acres = rng.lognormal(-1.6, 0.6, rows)
    distance_km = rng.gamma(2.0, 6.0, rows)
    school_score = np.clip(rng.normal(6.5, 1.8, rows), 1, 10)
    garage_spaces = rng.integers(0, 4, rows).astype(float)
    price = (60 + 0.16 * sqft + 14 * bathrooms + 6 * bedrooms - 0.9 * age_years + 70 * lot_acres
             - 3.2 * distance_km + 18 * school_score + 9 * garage_spaces + rng.normal(0, 25, rows))
    columns = {
        "sqft": (sqft, "{:.0f}"), "bedrooms": (bedrooms, "{:.0f}"), "bathrooms": (bathrooms, "{:.1f}"),
        "age_years": (age_years, "{:.0f}"), "lot_acres": (lot_acres, "{:.3f}"),
        "distance_km": (distance_km, "{:.2f}"), "school_score": (school_score, "{:.1f}"),
        "garage_spaces": (garage_spaces, "{:.0f}"), "price": (price.clip(40, None), "{:.2f}"),
    }
    lines = [",".join(columns)]
    for i in range(rows):
        lines.append(",".join(fmt.format(values[i]) for values, fmt in columns.values()))
    return "\n".join(lines) + "\n"


def digits() -> bytes:
    from sklearn.datasets import load_digits  # ships with scikit-learn, no download

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    buffer = io.BytesIO()
    # Written member by member with a fixed timestamp so the file is reproducible.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("x", x), ("y", y)):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


if __name__ == "__main__":
    (HERE / "housing.csv").write_text(housing())
    (HERE / "digits.npz").write_bytes(digits())
    print(f"wrote {HERE / 'housing.csv'} and {HERE / 'digits.npz'}")
