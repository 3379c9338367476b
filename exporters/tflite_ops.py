"""The operators a `.tflite` model uses, read from its flatbuffer (every subgraph)."""

from __future__ import annotations

import collections


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Reading TFLite models needs LiteRT: `pip install 'tfmeta[tflite]'` "
            "(package ai-edge-litert)."
        ) from error
    return schema_py_generated


def _operators(model_content: bytes) -> list[tuple[str, bool]]:
    """`(name, is_custom)` of every operator of every subgraph."""
    schema = _schema()
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if name.isupper()}
    model = schema.Model.GetRootAsModel(model_content, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append((code.CustomCode().decode(), True))
        else:
            codes.append((names.get(builtin, f"BUILTIN_{builtin}"), False))
    return [
        codes[model.Subgraphs(s).Operators(o).OpcodeIndex()]
        for s in range(model.SubgraphsLength())
        for o in range(model.Subgraphs(s).OperatorsLength())
    ]


def operator_counts(model_content: bytes) -> dict[str, int]:
    """How often each operator occurs, over all subgraphs (signatures, variable init).

    Builtin operators are named as in the TFLite schema (`CONV_2D`,
    `FULLY_CONNECTED`, ...); custom operators by their custom code, so Select
    TF ops show up as `Flex...` (e.g. `FlexConv2DBackpropFilter`).

    Args:
        model_content: the bytes of a `.tflite` file.

    Returns:
        `{operator_name: count}`.
    """
    return dict(collections.Counter(name for name, _ in _operators(model_content)))


def custom_operators(model_content: bytes) -> list[str]:
    """The non-builtin operators (Select TF `Flex...` ops, custom ops) a model needs.

    Empty for a model that stock LiteRT runs without extra delegates or op
    libraries.
    """
    return sorted({name for name, custom in _operators(model_content) if custom})
