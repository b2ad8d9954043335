"""A 3x5 bitmap font for the digits 0-9.

Tiny images (32x32, one 16x16 quadrant per image token) leave no room for TrueType rendering, which would also
make the pixels depend on the installed fonts. Each glyph is five rows of three cells; "1" marks an ink cell.
"""

GLYPH_WIDTH = 3
GLYPH_HEIGHT = 5

DIGIT_GLYPHS: dict[int, tuple[str, ...]] = {
    0: ("111", "101", "101", "101", "111"),
    1: ("010", "110", "010", "010", "111"),
    2: ("111", "001", "111", "100", "111"),
    3: ("111", "001", "111", "001", "111"),
    4: ("101", "101", "111", "001", "001"),
    5: ("111", "100", "111", "001", "111"),
    6: ("111", "100", "111", "101", "111"),
    7: ("111", "001", "001", "001", "001"),
    8: ("111", "101", "111", "101", "111"),
    9: ("111", "101", "111", "001", "111"),
}


def glyph_cells(digit: int) -> list[tuple[int, int]]:
    """The (column, row) cells that carry ink for `digit`."""
    rows = DIGIT_GLYPHS[digit]
    return [(x, y) for y, row in enumerate(rows) for x, cell in enumerate(row) if cell == "1"]
