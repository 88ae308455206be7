"""The HTML report: plots rendered once (inline SVG plus PNG files) and one self-contained page."""
