"""Score a model-ready parquet with an exported CCSS model: onnxruntime, numpy and pyarrow only.

    python serving/score_onnx.py data/06_models/onnx/dnn.onnx data/05_model_input/test.parquet --out scores.parquet

Reads the encoding description beside the model (``dnn.json``, written by ``kedro run --pipelines=export``):
the graph's inputs ``cat`` (int64), ``dense`` (float32) and ``bucket`` (int64), each stacked from the listed
columns of the model-ready table in that order. Refuses a table that records another feature-spec
fingerprint, lacks a column, has nulls, non-finite dense values or ids outside their cardinality (such an
id would read another feature's embedding). Writes ``row`` (the row's position in the table, int64) and
``probability`` (float32). The model's monotone recalibration (the description's ``recalibration``) is
inside the graph, so ``probability`` is already recalibrated; the file's metadata names it. No torch,
Kedro or ccss_pipeline import: this is what a server needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq


def fail(message: str) -> None:
    sys.exit(f"score_onnx: {message}")


def read_inputs(table_path: Path, description: dict) -> dict[str, np.ndarray]:
    """The graph's input arrays, from the columns the description lists, with its dtypes; checked."""
    schema = pq.read_schema(table_path)
    attrs = json.loads((schema.metadata or {}).get(b"PANDAS_ATTRS", b"{}"))
    recorded, expected = attrs.get("spec_fingerprint"), description["spec_fingerprint"]
    if recorded and recorded != expected:
        fail(f"{table_path} was built for feature spec {recorded}, the model for {expected}")
    columns = [c for inp in description["inputs"] for c in inp["columns"]]
    missing = [c for c in columns if c not in schema.names]
    if missing:
        fail(f"{table_path} lacks columns the model needs: {missing}")
    table = pq.read_table(table_path, columns=columns)
    arrays = {}
    for inp in description["inputs"]:
        dtype = np.dtype(inp["dtype"])
        parts = []
        for j, name in enumerate(inp["columns"]):
            column = table.column(name)
            if column.null_count:
                fail(f"column {name!r} has {column.null_count} nulls (model-ready tables have none)")
            values = column.to_numpy().astype(dtype, copy=False)
            if "cardinalities" in inp and ((values < 0) | (values >= inp["cardinalities"][j])).any():
                fail(f"column {name!r} has ids outside 0 .. {inp['cardinalities'][j] - 1}")
            if dtype.kind == "f" and not np.isfinite(values).all():
                fail(f"column {name!r} has non-finite values")
            parts.append(values)
        shape = (table.num_rows, len(parts))
        arrays[inp["name"]] = np.ascontiguousarray(np.stack(parts, 1)) if parts else np.zeros(shape, dtype)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="<backbone>.onnx; <backbone>.json must lie beside it")
    parser.add_argument("table", type=Path, help="a model-ready parquet (data/05_model_input/<split>.parquet)")
    parser.add_argument("--out", type=Path, required=True, help="parquet to write: row, probability")
    parser.add_argument("--batch-size", type=int, default=65536)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    args = parser.parse_args()
    encoding = args.model.with_suffix(".json")
    if not encoding.is_file():
        fail(f"{encoding} (the encoding description) is missing")
    description = json.loads(encoding.read_text())
    inputs = read_inputs(args.table, description)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    n = len(inputs["dense"])
    probability = np.empty(n, np.float32)
    for start in range(0, n, args.batch_size):
        batch = {name: array[start : start + args.batch_size] for name, array in inputs.items()}
        probability[start : start + args.batch_size] = session.run(["probability"], batch)[0]
    recalibration = json.dumps(description.get("recalibration") or {"kind": "none"}, sort_keys=True)
    meta = {"model": str(description.get("model")), "spec_fingerprint": description["spec_fingerprint"],
            "recalibration": recalibration}  # fmt: skip
    table = pa.table({"row": np.arange(n, dtype=np.int64), "probability": probability})
    pq.write_table(table.replace_schema_metadata({f"ccss_{k}": v for k, v in meta.items()}), args.out)
    print(
        f"scored {n:,} rows with {args.model.name} ({description['backbone']}, {description.get('variant')}) "
        f"-> {args.out} (recalibration in the graph: {recalibration})"
    )


if __name__ == "__main__":
    main()
