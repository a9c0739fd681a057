"""tf2onnx's conversion of a frozen TensorFlow graph, run in a process of its own (`python -m` this module).

tf2onnx needs several times the graph's size while it converts, and more the more the process did before: 7 GB
for ConvNeXt-Tiny in a fresh process, 15 GB in a test worker that had exported other models first, and much of it
stays behind. In a process of its own the peak is always the former and everything is returned when it ends."""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

OPSET = 17  # ONNX Runtime 1.17 and later run it


def convert(graph_file: Path, output_path: Path, input_names: list[str], output_names: list[str]) -> None:
    """Convert the serialized GraphDef in `graph_file` (its variables frozen to constants) to an ONNX file."""
    import tensorflow as tf
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(graph_file).read_bytes())
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's notices about NumPy 2, which Keras's patch answers
        patch_tf2onnx()
        tf2onnx.convert.from_graph_def(graph_def, input_names=input_names, output_names=output_names, opset=OPSET,
                                       output_path=str(output_path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph_file", type=Path)
    parser.add_argument("output_path", type=Path)
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--outputs", nargs="+", required=True)
    args = parser.parse_args(argv)
    convert(args.graph_file, args.output_path, args.inputs, args.outputs)


if __name__ == "__main__":
    main()
