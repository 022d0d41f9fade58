"""Register blocks: contiguous runs of registers read in one request, and the named values in them.

A protocol describes what it reads as Blocks (data, readable next to its docs/meters page) and decodes
an answer with decode_block; the table says which function code reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from driver import codec
from driver.errors import CommunicationError

HOLDING, INPUT = "holding", "input"


@dataclass(frozen=True)
class Field:
    """One value in a block: offset from the block start, type, register count, scale and word order."""

    name: str
    offset: int
    kind: str  # a codec.WIDTHS type, or "string"
    count: int = 1
    scale: float = 1.0
    word_order: str = "high_first"


@dataclass(frozen=True)
class Block:
    """A contiguous run of registers read in one request, from the holding or the input table."""

    address: int
    count: int
    fields: tuple[Field, ...]
    table: str = HOLDING


def field(name: str, offset: int, kind: str, scale: float = 1.0, word_order: str = "high_first") -> Field:
    """A numeric field of its type's width."""
    return Field(name, offset, kind, codec.WIDTHS[kind], scale, word_order)


def decode_field(spec: Field, registers: list[int]) -> int | float | str:
    """One field's value, scaled to its unit."""
    words = registers[spec.offset : spec.offset + spec.count]
    if spec.kind == "string":
        return codec.decode_string(words)
    raw = codec.decode_number(spec.kind, words, spec.word_order)
    if spec.kind == "f32":
        raw = float(f"{raw:.7g}")  # the digits a float32 holds, not the binary expansion's tail
    if spec.scale == 1.0:
        return raw
    return round(raw * spec.scale, 6)


def decode_block(block: Block, registers: list[int]) -> dict[str, int | float | str]:
    """Every field of a block, scaled to its unit."""
    if len(registers) != block.count:
        raise CommunicationError(
            f"meter answered {len(registers)} registers at {block.address} (0x{block.address:04X}), "
            f"expected {block.count}"
        )
    return {spec.name: decode_field(spec, registers) for spec in block.fields}
