"""Figures and tables for reports: matplotlib without a display, PNG files, markdown tables.

tomk.report (one run) and tomk.compare (runs across seeds and settings) draw with these.
"""
from __future__ import annotations

import re


def pyplot():
  """matplotlib.pyplot on the Agg backend: PNG files, no display needed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save_figure(fig, path: str) -> str:
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  pyplot().close(fig)
  return path


def file_name(name: str) -> str:
  """`name` as a file name: runs of other characters become '_'."""
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_')


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
  lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
  return '\n'.join(lines)
