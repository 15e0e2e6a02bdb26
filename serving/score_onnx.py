"""Score a model-ready parquet with an exported CCSS model: onnxruntime, numpy and pyarrow only.

    python serving/score_onnx.py data/06_models/onnx/dnn.onnx data/05_model_input/test.parquet --out scores.parquet

Reads the encoding description beside the model (``dnn.json``, written by ``kedro run --pipelines=export``):
the graph's inputs ``cat`` (int64), ``dense`` (float32) and ``bucket`` (int64), each stacked from the listed
columns of the model-ready table in that order. Refuses a ``.json`` of another export than the ``.onnx`` (which
records its own), a table of another feature spec, missing columns, nulls, columns that are not numbers,
fractional ids, non-finite dense values, ids outside their cardinality (they would read another feature's
embedding), ``--out`` naming an input and ``--batch-size`` < 1. Writes ``row`` (the row's position, int64) and
``probability`` (float32), recalibrated inside the graph (the file's metadata names the map). No torch, Kedro
or ccss_pipeline import: this is what a server needs.
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


def positive(text: str) -> int:
    """argparse type: an integer >= 1 (a batch of 0 rows fails in range(), a negative one scores none)."""
    if not text.strip().lstrip("+").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def check_export(session: ort.InferenceSession, description: dict, model: Path, encoding: Path) -> None:
    """The .json beside the .onnx must agree with every entry of the description the graph records."""
    meta = session.get_modelmeta().custom_metadata_map
    graph, described = meta.get("spec_fingerprint", "none recorded"), description.get("spec_fingerprint")
    embedded = json.loads(meta.get("ccss_encoding", "{}"))
    if graph != described or any(description.get(key) != value for key, value in embedded.items()):
        fail(f"{model} (feature spec {graph}) and {encoding} (feature spec {described}, backbone "
             f"{description.get('backbone')}) come from different exports; use the pair one export wrote")  # fmt: skip


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
            if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
                fail(f"column {name!r} holds {column.type} values, not numbers (model-ready tables hold {dtype})")
            values = column.to_numpy()
            if dtype.kind == "i" and values.dtype.kind == "f" and not (values == np.round(values)).all():
                fail(f"column {name!r} holds fractional or non-finite ids (the model needs integers)")
            values = values.astype(dtype, copy=False)
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
    parser.add_argument("--batch-size", type=positive, default=65536, help="rows per onnxruntime call (>= 1)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    args = parser.parse_args()
    encoding = args.model.with_suffix(".json")
    if not encoding.is_file():
        fail(f"{encoding} (the encoding description) is missing")
    for given in (args.table, args.model, encoding):
        if args.out.resolve() == given.resolve() or (args.out.exists() and args.out.samefile(given)):
            fail(f"--out {args.out} is the input {given}: it would be written over; name another file")
    description = json.loads(encoding.read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])
    check_export(session, description, args.model, encoding)
    inputs = read_inputs(args.table, description)
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
    print(f"scored {n:,} rows with {args.model.name} ({description['backbone']}, {description.get('variant')}) "
          f"-> {args.out} (recalibration in the graph: {recalibration})")  # fmt: skip


if __name__ == "__main__":
    main()
